import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';

/** The SDK and the codec it uses must run in a browser or React Native: no Node built-ins. */
const files = [
  ...readdirSync(new URL('../../client/', import.meta.url)).map((f) => `client/${f}`),
  'proto/client-codec.ts',
  'proto/client-frames.ts',
  'proto/client-descriptor.ts',
].filter((f) => f.endsWith('.ts'));

test('client - the SDK imports no Node built-in and uses no Node-only global', (t) => {
  t.true(files.length >= 5);
  for (const f of files) {
    const src = readFileSync(new URL(`../../${f}`, import.meta.url), 'utf8');
    const imports = [...src.matchAll(/from '([^']+)'/g)].map((m) => m[1]!);
    for (const spec of imports) {
      t.false(spec.startsWith('node:') || ['fs', 'net', 'http', 'crypto', 'buffer', 'events', 'ws'].includes(spec), `${f} imports ${spec}`);
      t.true(spec.startsWith('.') || spec.startsWith('protobufjs'), `${f} imports only relative modules and protobufjs, not ${spec}`);
    }
    t.false(/\bBuffer\.|\bprocess\.|\brequire\(/.test(src), `${f} uses a Node-only global`);
  }
});
