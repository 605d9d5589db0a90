/**
 * The chat suite against the compiled build, which is what `npm start` runs (dist/, plain
 * JavaScript, the SQLite writer thread loaded without tsx). `npm test` builds it first; alone:
 * `npm run build && npx ava test/e2e/chat-compiled.test.ts`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startServer } from '../support/server.ts';
import { registerChatSuite } from './chat-suite.ts';

registerChatSuite('sqlite, compiled build', async () => {
  if (!existsSync(join(ROOT, 'dist/bin/parleyd.js'))) throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
  return startServer({ entry: 'dist' });
});
