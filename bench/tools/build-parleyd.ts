/**
 * Builds parleyd as plain JavaScript (one ESM bundle, dependencies external) into bench/.build/,
 * so the harness can measure the server without the tsx loader:
 *
 *   node --import tsx bench/tools/build-parleyd.ts
 *   npm run bench -- --scenario connections --target parley --parleyd-entry bench/.build/parleyd.mjs
 *
 * Why: tsx compiles with esbuild's keepNames, which wraps every arrow function as
 * `__name(() => ..., "f")`; defining `name` on each closure instance gives it its own property
 * dictionary (about 255 extra bytes per closure object). This build leaves names alone.
 *
 * The SQLite writer thread is still started the server's way (it loads its .ts module through
 * tsx): a link next to the bundle points at runtime/storage/sqlite/sqlite-writer.ts.
 */
import { build } from 'esbuild';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../lib/targets.ts';

const out = join(ROOT, 'bench/.build');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(ROOT, 'bin/parleyd.ts')],
  outfile: join(out, 'parleyd.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  keepNames: false,
  sourcemap: false,
  logLevel: 'warning',
});
symlinkSync(join(ROOT, 'runtime/storage/sqlite/sqlite-writer.ts'), join(out, 'sqlite-writer.ts'));
process.stdout.write(`built ${join(out, 'parleyd.mjs')}\n`);
