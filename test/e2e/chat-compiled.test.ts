/**
 * The chat suite against the compiled build, which is what `npm start` runs (dist/, plain
 * JavaScript, the SQLite writer thread loaded without tsx).
 */
import { execFileSync } from 'node:child_process';
import { ROOT, startServer } from '../support/server.ts';
import { registerChatSuite } from './chat-suite.ts';

registerChatSuite('sqlite, compiled build', async () => {
  execFileSync(process.execPath, [`${ROOT}/node_modules/typescript/bin/tsc`, '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  return startServer({ entry: 'dist' });
});
