/**
 * `npm run build:page` (part of `npm run build`): the web chat page (web/) that parleyd serves
 * at `/` (actors/api/web-page.ts), in dist/page/:
 *
 *   index.html               web/index.html naming the files below; revalidated on every load
 *   assets/app-HASH.js       web/app.ts and the client SDK it imports, in one ES module (+ .map)
 *   assets/app-HASH.css      web/app.css
 *
 * The content hash in each asset's name lets parleyd cache it for a year; index.html changes
 * with every build that changes an asset. First web/ is type-checked against the DOM lib
 * (tsconfig.web.json). The folder is replaced whole, so no stale asset survives.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT_DIR = join(ROOT, 'dist/page');
/** As the SDK's browser bundle (bin/build-client.ts): browsers from 2023 on. */
const TARGET = ['es2022', 'chrome111', 'edge111', 'firefox111', 'safari16.4'];

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
try {
  await promisify(execFile)(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.web.json')], { cwd: ROOT });
} catch (err) {
  const out = err as { stdout?: string; stderr?: string };
  throw new Error(`tsc -p tsconfig.web.json failed:\n${out.stdout ?? ''}${out.stderr ?? ''}`, { cause: err });
}

await rm(OUT_DIR, { recursive: true, force: true });
await mkdir(OUT_DIR, { recursive: true });
const result = await build({
  entryPoints: [join(ROOT, 'web/app.ts'), join(ROOT, 'web/app.css')],
  outdir: join(OUT_DIR, 'assets'),
  entryNames: '[name]-[hash]',
  absWorkingDir: ROOT,
  bundle: true,
  platform: 'browser',
  format: 'esm',
  target: TARGET,
  sourcemap: 'linked',
  minify: true,
  legalComments: 'linked',
  logLevel: 'warning',
  metafile: true,
});

const outputs = Object.entries(result.metafile.outputs);
const assetOf = (entry: string): string => {
  const found = outputs.find(([, o]) => o.entryPoint === entry);
  if (!found) throw new Error(`esbuild wrote nothing for ${entry}`);
  return `/assets/${basename(found[0])}`;
};
const html = (await readFile(join(ROOT, 'web/index.html'), 'utf8')).replaceAll('%APP_JS%', assetOf('web/app.ts')).replaceAll('%APP_CSS%', assetOf('web/app.css'));
await writeFile(join(OUT_DIR, 'index.html'), html);
const kib = Math.round(outputs.reduce((n, [, o]) => n + o.bytes, 0) / 1024);
console.log(`built dist/page/ (index.html and ${outputs.length} assets, ${kib} KiB)`);
