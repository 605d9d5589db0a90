/**
 * The benchmark measures what `npm start` runs: the compiled build in dist/. Built here only when
 * it is missing or older than a source file, so a run inside `npm test` (which builds first)
 * never rewrites files another test's server is loading.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './targets.ts';

export const DIST_ENTRY = 'dist/bin/parleyd.js';
const SOURCES = ['runtime', 'actors', 'proto', 'bin', 'config', 'client'];

function newestSourceMs(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSourceMs(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds dist/ (`npm run build`) unless it is newer than every source file. */
export function ensureBuild(log: (line: string) => void): void {
  const entry = join(ROOT, DIST_ENTRY);
  const sources = Math.max(...SOURCES.map((d) => newestSourceMs(join(ROOT, d))));
  if (existsSync(entry) && statSync(entry).mtimeMs >= sources) return;
  log('bench: building dist/ (npm run build)');
  execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
}
