/**
 * The chaos suite's short profile, as `npm run chaos` runs it (the CLI in a process of its own,
 * real clusters of three parleyd nodes with etcd, built dist/): kill-loop with one SIGKILL and a
 * restart, and pause with one SIGSTOP of twice the lease TTL, with presence in the store (so the
 * store's presence fence is what the pause tests). Each must end with exactly the summary line of
 * the contract and exit 0: nothing acked lost, nothing duplicated, reordered or skipped, and no
 * stale "online" shown after the paused node resumed. Small: 12 devices, 6 channels, 20 msg/s,
 * a 3 s lease; the two run side by side (about 45 s). The long runs are `npm run chaos -- all`.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ensureBuild } from '../../bench/lib/build.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// dist/ is built once here (npm test has built it already), not by both runs at once.
const SMALL = ['--minutes', '0.4', '--clients', '12', '--channels', '6', '--rate', '20', '--lease-ttl-s', '3', '--leavers-per-node', '1', '--no-build'];

test.before(() => ensureBuild((line) => process.stderr.write(`${line}\n`)));
const SUMMARY = /^(\d+) acked lost, (\d+) duplicates, (\d+) order violations, (\d+) gaps, reconnect p99 (\d+) ms(, .*)?$/;

async function chaos(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'chaos/run.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // Bounded: the run itself ends in about a minute; past 110 s something hangs.
  const timer = setTimeout(() => child.kill('SIGKILL'), 110_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

function lastLine(text: string): string {
  return text.trimEnd().split('\n').at(-1) ?? '';
}

test('chaos short profile - kill-loop: one node SIGKILLed and restarted under load, nothing acked lost, duplicated, reordered or skipped', async (t) => {
  const run = await chaos(['kill-loop', ...SMALL]);
  const line = lastLine(run.stdout);
  t.log(line);
  const m = SUMMARY.exec(line);
  t.truthy(m, `the last line is the summary line: ${line}\n${run.stderr.slice(-3_000)}`);
  t.deepEqual(m!.slice(1, 5), ['0', '0', '0', '0'], run.stdout);
  t.regex(line, /, 1 kills$/);
  t.is(run.code, 0, run.stderr.slice(-3_000));
});

test('chaos short profile - pause: a node SIGSTOPped past its lease resumes without a stale write taking effect', async (t) => {
  const run = await chaos(['pause', ...SMALL, '--no-redis']);
  const line = lastLine(run.stdout);
  t.log(line);
  const m = SUMMARY.exec(line);
  t.truthy(m, `the last line is the summary line: ${line}\n${run.stderr.slice(-3_000)}`);
  t.deepEqual(m!.slice(1, 5), ['0', '0', '0', '0'], run.stdout);
  t.regex(line, /, 0 stale-epoch writes seen \(\d+ refused\)$/);
  t.regex(run.stdout, /\| pause \| writes with a stale epoch that took effect \| 0 \| 0 stale states shown to apps \| met \|/);
  t.is(run.code, 0, run.stderr.slice(-3_000));
});
