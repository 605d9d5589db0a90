/**
 * Tokens minted by `parleyctl` open sessions on the node they were minted for: a single node (its
 * secret in the data dir) and every node of a cluster sharing `--secret-file`. A token signed
 * with another secret is refused with UNAUTHENTICATED.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster } from '../support/cluster.ts';
import { newUser, ROOT, startServer, type ServerHandle, type TestUser } from '../support/server.ts';
import { RawSession } from './support.ts';

function mint(userId: string, flags: Record<string, string>): string {
  const args = ['--import', 'tsx', 'bin/parleyctl.ts', 'token', 'mint', '--user-id', userId, ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v])];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`parleyctl token mint failed (${r.status}): ${r.stderr}`);
  return r.stdout.trim();
}

/** The hello's answer: 'welcome', or the error code. */
async function helloWith(node: ServerHandle, user: TestUser, token: string): Promise<string> {
  try {
    const s = await RawSession.open(node.wsUrl, { ...user, token }, 'ctl');
    s.close();
    return 'welcome';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

test('a single node accepts tokens parleyctl minted from its data dir, and refuses another secret\'s', async (t) => {
  const node = await startServer();
  try {
    const user = await newUser(node, 'ctl');
    t.is(await helloWith(node, user, mint(user.userId, { 'data-dir': node.dataDir })), 'welcome');
    const otherDir = mkdtempSync(join(tmpdir(), 'parley-other-'));
    t.regex(await helloWith(node, user, mint(user.userId, { 'data-dir': otherDir })), /UNAUTHENTICATED/);
  } finally {
    await node.kill();
  }
});

test('every cluster node accepts tokens parleyctl minted with the shared secret file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-secret-'));
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, randomBytes(48).toString('base64url') + '\n', { mode: 0o600 });
  const cluster = await startCluster(2, { 'secret-file': secretFile });
  try {
    const user = await newUser(cluster.nodes[0]!, 'ctl');
    // --data-dir need not exist when a secret file is given.
    const token = mint(user.userId, { 'data-dir': join(dir, 'no-such-dir'), 'secret-file': secretFile });
    for (const node of cluster.nodes) t.is(await helloWith(node, user, token), 'welcome', node.nodeId);
  } finally {
    await cluster.stop();
  }
});
