/**
 * Installing Debian packages from several processes at once, for real: separate processes run
 * the project's install path (apt-get update, then apt-get install --reinstall of `hello`, GNU
 * hello, 53 kB, needing only libc6) at the same time, and an apt lock held by a process outside
 * the project is waited out. A wrapper named apt-get, first on the children's PATH, records when
 * each real apt-get ran and how it ended, so overlaps are seen, not inferred. Needs root, as
 * every install does (CI runs as root).
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findExecutable } from '../services/install.ts';
import { ROOT } from './support/server.ts';

const PACKAGE = 'hello';

interface AptRun {
  readonly label: string;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly args: string;
  readonly code: number;
}

async function freshDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'services-apt-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A directory holding `apt-get`: it logs start, end and exit code of the real one it runs. With
 * APT_GATE set, its first run waits (up to 5 min) until the test creates `$APT_GATE/go`, having
 * said `$APT_GATE/waiting`: the caller then holds the machine-wide install lock, so the test can
 * take apt's lock from outside without keeping anyone else's install waiting behind it.
 */
async function tracingAptGet(dir: string): Promise<string> {
  const real = findExecutable('apt-get');
  if (real === undefined) throw new Error('apt-get not found: this test needs a Debian machine');
  const bin = join(dir, 'bin');
  await mkdir(bin);
  const wrapper = join(bin, 'apt-get');
  await writeFile(
    wrapper,
    `#!/bin/sh
if [ -n "$APT_GATE" ] && [ ! -e "$APT_GATE/go" ]; then
  : > "$APT_GATE/waiting"
  i=0
  while [ ! -e "$APT_GATE/go" ] && [ $i -lt 600 ]; do sleep 0.5; i=$((i + 1)); done
fi
start=$(date +%s%N)
${real} "$@"
code=$?
printf '%s %s %s %s\\n' "$start" "$(date +%s%N)" "$code" "$*" >> "$APT_TRACE"
exit $code
`,
  );
  await chmod(wrapper, 0o755);
  return bin;
}

/** Runs test/support/apt-install.ts in its own process with the tracing apt-get first on PATH. */
function installInChild(t: ExecutionContext, bin: string, trace: string, timeoutMs: number, gate?: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/support/apt-install.ts'), PACKAGE], {
      cwd: ROOT,
      env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, APT_TRACE: trace, ...(gate ? { APT_GATE: gate } : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: output.slice(-4_000) });
    });
  });
}

async function runsIn(trace: string, label: string): Promise<AptRun[]> {
  let text = '';
  try {
    text = await readFile(trace, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => {
      const [start, end, code, ...args] = line.split(' ');
      return { label, startNs: BigInt(start!), endNs: BigInt(end!), code: Number(code), args: args.join(' ') };
    });
}

test.serial('apt: two processes installing at once both succeed, and their apt-get runs never overlap', async (t) => {
  // Other installs on the machine (other test files) may hold the lock first: generous bounds.
  t.timeout(15 * 60_000, 'two installs of a 53 kB package took too long');
  const dir = await freshDir(t);
  const bin = await tracingAptGet(dir);
  const traces = { a: join(dir, 'trace-a'), b: join(dir, 'trace-b') };
  const [a, b] = await Promise.all([installInChild(t, bin, traces.a, 12 * 60_000), installInChild(t, bin, traces.b, 12 * 60_000)]);
  t.is(a.code, 0, a.output);
  t.is(b.code, 0, b.output);

  const runs = [...(await runsIn(traces.a, 'a')), ...(await runsIn(traces.b, 'b'))].sort((x, y) => (x.startNs < y.startNs ? -1 : 1));
  for (const label of ['a', 'b']) {
    const mine = runs.filter((r) => r.label === label);
    t.true(mine.some((r) => / update$/.test(r.args) && r.code === 0), `${label} ran apt-get update: ${JSON.stringify(mine.map((r) => r.args))}`);
    t.true(mine.some((r) => r.args.includes(`install -y --no-install-recommends --reinstall ${PACKAGE}`) && r.code === 0), `${label} ran apt-get install`);
  }
  for (let i = 1; i < runs.length; i++) {
    t.true(runs[i - 1]!.endNs <= runs[i]!.startNs, `apt-get of ${runs[i - 1]!.label} (${runs[i - 1]!.args}) overlaps one of ${runs[i]!.label} (${runs[i]!.args})`);
  }
  // The lock spans a process's whole apt section (update and install), not each apt-get alone.
  const order = runs.map((r) => r.label).join('');
  t.regex(order, /^(a+b+|b+a+)$/, `apt-get runs in the order ${order}`);
});

test.serial('apt: an apt lock held by a process outside the project is waited out, not failed on', async (t) => {
  t.timeout(15 * 60_000, 'the install did not finish after the outside lock was released');
  const dir = await freshDir(t);
  const bin = await tracingAptGet(dir);
  const trace = join(dir, 'trace');
  const gate = join(dir, 'gate');
  await mkdir(gate);
  let finished = false;
  const child = installInChild(t, bin, trace, 12 * 60_000, gate).finally(() => (finished = true));
  // Other installs on the machine (other test files) may come first; ours waits its turn.
  if (!(await until(() => existsSync(join(gate, 'waiting')) || finished, 10 * 60_000)) || finished) {
    t.fail(`the install did not reach apt-get: ${finished ? (await child).output : 'still waiting after 10 min'}`);
    return;
  }

  // The lists lock `apt-get update` takes (an fcntl lock), held by perl (perl-base is Essential)
  // until the test closes its stdin: what an unattended upgrade or a person's apt-get does.
  const holder = spawn('perl', ['-e', HOLD_FCNTL_LOCK, '/var/lib/apt/lists/lock'], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (holder.exitCode === null) holder.kill('SIGKILL');
  });
  let said = '';
  holder.stdout.on('data', (d: Buffer) => (said += d.toString()));
  holder.stderr.on('data', (d: Buffer) => (said += d.toString()));
  const held = await until(() => said.includes('held'), 30_000);
  await writeFile(join(gate, 'go'), '');
  t.true(held, `the lock holder said: ${said}`);
  // Released only once the install has run into the lock at least once.
  const refused = await until(async () => (await runsIn(trace, 'c')).some((r) => r.code === 100), 60_000);
  holder.stdin.end();
  t.true(refused, 'apt-get update ran into the held lock');
  t.true(await until(() => said.includes('released'), 30_000));
  const result = await child;
  t.is(result.code, 0, result.output);
  const runs = await runsIn(trace, 'c');
  const updates = runs.filter((r) => / update$/.test(r.args));
  t.true(updates.length >= 2, 'update was run again after the refusal');
  t.is(updates.at(-1)!.code, 0);
  t.true(runs.some((r) => r.args.includes(`--reinstall ${PACKAGE}`) && r.code === 0));
});

const HOLD_FCNTL_LOCK = `
use strict;
use Fcntl qw(F_SETLKW F_WRLCK SEEK_SET O_RDWR O_CREAT);
sysopen(my $fh, $ARGV[0], O_RDWR | O_CREAT, 0640) or die "open $ARGV[0]: $!";
my $lock = pack('s s x4 q q i x4', F_WRLCK, SEEK_SET, 0, 0, 0); # struct flock on 64-bit Linux
fcntl($fh, F_SETLKW, $lock) or die "fcntl: $!";
$| = 1;
print "held\\n";
my $ignored = <STDIN>;
close($fh);
print "released\\n";
`;

/** Polls `check` every 100 ms until it holds or `timeoutMs` passes; returns whether it held. */
async function until(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}
