/**
 * `npm run build:client`: the client SDK (client/index.ts) as one ES module for browsers, with
 * type declarations, in dist/browser/:
 *
 *   parley-client.js      the SDK and everything it imports (protobufjs, the frame descriptor)
 *   parley-client.js.map  its source map, pointing at client/ and proto/
 *   parley-client.d.ts    the types of parley-client.js: `import { ParleyClient, ParleyHttp } from './parley-client.js'`
 *   types/                the declarations parley-client.d.ts re-exports (client/, proto/)
 *
 * Not dist/client/: `npm run build` already puts the SDK compiled file by file for Node there.
 * The folder is replaced whole, so nothing stale survives a rename in client/.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT_DIR = join(ROOT, 'dist/browser');
const BUNDLE = 'parley-client.js';
/** Browsers from 2023 on: ES2022 (class fields, `??=`, top-level await) without down-levelling. */
const TARGET = ['es2022', 'chrome111', 'edge111', 'firefox111', 'safari16.4'];

await rm(OUT_DIR, { recursive: true, force: true });

const result = await build({
  entryPoints: [join(ROOT, 'client/index.ts')],
  outfile: join(OUT_DIR, BUNDLE),
  bundle: true,
  // `browser`: packages' "browser" fields apply (protobufjs's optional fs becomes an empty stub)
  // and any Node built-in reached from client/ fails the build instead of failing in the page.
  platform: 'browser',
  format: 'esm',
  target: TARGET,
  sourcemap: true,
  // Unminified: an app's own bundler minifies, and readable frames help whoever debugs the SDK.
  minify: false,
  legalComments: 'eof',
  logLevel: 'warning',
  metafile: true,
});

// Declarations: tsc against the DOM lib and no Node types, so the build also proves the SDK's
// types need nothing from Node.
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
try {
  await promisify(execFile)(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.client.json')], { cwd: ROOT });
} catch (err) {
  const out = err as { stdout?: string; stderr?: string };
  throw new Error(`tsc -p tsconfig.client.json failed:\n${out.stdout ?? ''}${out.stderr ?? ''}`, { cause: err });
}

// The sources import each other as `./x.ts` (run directly by tsx) and tsc keeps those specifiers
// in declarations. TypeScript 5 resolves them, but older versions and other readers of .d.ts
// files expect `./x.js`, the form that resolves to `./x.d.ts` under every module resolution.
const typesDir = join(OUT_DIR, 'types');
for (const entry of await readdir(typesDir, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile() || !entry.name.endsWith('.d.ts')) continue;
  const file = join(entry.parentPath, entry.name);
  const text = await readFile(file, 'utf8');
  await writeFile(file, text.replace(/(from\s+|import\()(['"])(\.{1,2}\/[^'"]+)\.ts\2/g, '$1$2$3.js$2'));
}
await writeFile(join(OUT_DIR, 'parley-client.d.ts'), "export * from './types/client/index.js';\n");

const bytes = result.metafile.outputs[Object.keys(result.metafile.outputs).find((o) => o.endsWith(BUNDLE))!]!.bytes;
console.log(`built dist/browser/${BUNDLE} (${Math.round(bytes / 1024)} KiB) and its declarations`);
