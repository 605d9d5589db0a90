/**
 * Forged and stale tokens on a real parleyd (issue 15, security): expired, `alg: none` (as a JWT
 * and in Parley's own form with no signature), signed with another secret, tampered, and garbage
 * are all refused with the same clear answer, over HTTP (401 UNAUTHENTICATED "invalid or expired
 * token") and in a WebSocket hello (an error frame with that code and message, then close 1008).
 * The node's secret is given (--secret-file), so the test can mint an expired token with the real key.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import WebSocket from 'ws';
import { deriveKey } from '../../actors/auth/signing-secret.ts';
import { TokenSigner } from '../../actors/auth/tokens.ts';
import { decodeServerFrame, encodeClientFrame } from '../../proto/client-codec.ts';
import { newUser, startServer, type ServerHandle, type TestUser } from '../support/server.ts';
import { call } from './support.ts';

const SECRET = 'security-test-secret-'.repeat(3);
let server: ServerHandle;
let user: TestUser;

test.before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-tokens-'));
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, SECRET);
  server = await startServer({ flags: { 'secret-file': secretFile } });
  user = await newUser(server, 'tk');
});

test.after.always(async () => {
  await server?.stop();
});

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

const claimsNow = () => {
  const nowS = Math.floor(Date.now() / 1000);
  return { sub: user.userId, sid: 's'.repeat(22), jti: 'j'.repeat(22), iat: nowS, exp: nowS + 3600 };
};
const realSigner = () => new TokenSigner(deriveKey(Buffer.from(SECRET, 'utf8'), 'tokens'), 3600);

/** Every kind of bad token, by name. */
function forgeries(): Record<string, string> {
  const claims = claimsNow();
  const nowS = claims.iat;
  const real = realSigner();
  const foreign = new TokenSigner(deriveKey(Buffer.from('another-secret-entirely-'.repeat(2), 'utf8'), 'tokens'), 3600);
  const [, payload, signature] = user.token.split('.');
  return {
    expired: real.sign({ ...claims, iat: nowS - 7200, exp: nowS - 1 }),
    'alg none (JWT)': `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`,
    'alg none (no signature)': `v1.${b64(claims)}.`,
    'signature "none"': `v1.${b64(claims)}.none`,
    'another secret': foreign.sign(claims),
    'tampered payload': `v1.${b64({ ...claims, sub: 'someone-else' })}.${signature}`,
    'signature of another payload': `v1.${payload}x.${signature}`,
    garbage: 'garbage',
    'three dots': '...',
    'oversized (4 KiB)': `v1.${'A'.repeat(4096)}.sig`,
  };
}

test('tokens - expired, alg none, another key, tampered and garbage tokens get 401 "invalid or expired token" over HTTP', async (t) => {
  t.is((await call(server, 'GET', '/v1/channels', { token: user.token })).status, 200, 'the real token works');
  t.is((await call(server, 'GET', '/v1/channels', { token: realSigner().sign(claimsNow()) })).status, 200, 'so does one the test mints with the node\'s key: the expired one below is refused for its age alone');
  for (const [name, token] of Object.entries(forgeries())) {
    const a = await call(server, 'GET', '/v1/channels', { token });
    t.deepEqual([a.status, a.code, a.message], [401, 'UNAUTHENTICATED', 'invalid or expired token'], name);
    const refresh = await call(server, 'POST', '/v1/sessions/refresh', { token });
    t.is(refresh.status, 401, `${name}: cannot be refreshed into a good one`);
  }
  const none = await call(server, 'GET', '/v1/channels');
  t.deepEqual([none.status, none.code, none.message], [401, 'UNAUTHENTICATED', 'missing bearer token']);
  const basic = await call(server, 'GET', '/v1/channels', { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
  t.deepEqual([basic.status, basic.code], [401, 'UNAUTHENTICATED']);
});

/** A WebSocket hello with `token`: the frame the node answers and the close code. */
async function hello(token: string): Promise<{ body: string; code?: string; message?: string; close: number }> {
  const ws = new WebSocket(server.wsUrl);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const first = new Promise<{ body: string; code?: string; message?: string }>((resolve) =>
    ws.once('message', (data: Buffer) => {
      const f = decodeServerFrame(new Uint8Array(data));
      resolve(f.body === 'error' ? { body: f.body, code: f.error.code, message: f.error.message } : { body: f.body });
    }),
  );
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.send(encodeClientFrame(1, 'hello', { token, device_id: 'd1', last_inbox_seq: 0 }));
  const answer = await first;
  if (answer.body === 'welcome') ws.close();
  return { ...answer, close: await closed };
}

test('tokens - the same forgeries in a WebSocket hello get an UNAUTHENTICATED error frame and close 1008', async (t) => {
  t.is((await hello(user.token)).body, 'welcome', 'the real token opens a session');
  for (const [name, token] of Object.entries(forgeries())) {
    t.deepEqual(await hello(token), { body: 'error', code: 'UNAUTHENTICATED', message: 'invalid or expired token', close: 1008 }, name);
  }
});
