#!/usr/bin/env -S node --import tsx
/**
 * `npm run chaos -- SCENARIO [options]`: runs one scenario (or `all`) and prints a table of its
 * figures, then exactly one summary line, the last line of stdout:
 *
 *   N acked lost, N duplicates, N order violations, N gaps, reconnect p99 X ms[, what the scenario adds]
 *
 * Progress goes to stderr. Exit 0 when every invariant held (with --strict, every figure's target
 * too), 1 when one failed, 2 on a usage error. See chaos/README.md.
 */
import { Command, InvalidArgumentError } from 'commander';
import { ensureBuild } from '../bench/lib/build.ts';
import { emptyReport, summaryLine } from './checker.ts';
import { runScenario, type Figure, type RunOptions, type Scenario, type ScenarioResult } from './scenario.ts';
import { killLoop } from './scenarios/kill-loop.ts';
import { netem } from './scenarios/netem.ts';
import { partition } from './scenarios/partition.ts';
import { pause } from './scenarios/pause.ts';
import { storeRestart } from './scenarios/store-restart.ts';
import { runSuite, SUITES, type SuiteName, type SuiteResult } from './suites.ts';

const FAULTS: Record<string, Scenario> = { 'kill-loop': killLoop, pause, partition, netem, 'store-restart': storeRestart };
const NAMES = [...Object.keys(FAULTS), ...Object.keys(SUITES), 'all'];

function positive(name: string, integer: boolean) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new InvalidArgumentError(`${name} must be a positive ${integer ? 'integer' : 'number'}`);
    return n;
  };
}

const program = new Command('chaos')
  .argument('<scenario>', NAMES.join(' | '))
  .option('--minutes <n>', 'load duration per fault scenario (fractions allowed)', positive('--minutes', false), 10)
  .option('--nodes <n>', 'parleyd nodes', positive('--nodes', true), 3)
  .option('--clients <n>', 'devices (careful apps)', positive('--clients', true), 200)
  .option('--channels <n>', 'channels (a fifth DMs, the rest groups)', positive('--channels', true), 50)
  .option('--rate <n>', 'messages per second, all clients together', positive('--rate', false), 100)
  .option('--lease-ttl-s <n>', 'membership lease TTL of the nodes', positive('--lease-ttl-s', true), 5)
  .option('--kill-every-s <n>', 'kill-loop: seconds between kills', positive('--kill-every-s', false), 30)
  .option('--restart-after-s <n>', 'kill-loop: seconds a killed node stays down', positive('--restart-after-s', false), 5)
  .option('--leavers-per-node <n>', 'single-device users per node whose phone dies with their node', positive('--leavers-per-node', true), 2)
  .option('--store <store>', 'sqlite | cassandra (a private one this run starts and may restart) | cassandra://HOST:PORT/KEYSPACE (external, never restarted)', 'sqlite')
  .option('--no-redis', 'presence in the store instead of a private Redis')
  .option('--seed <n>', 'shape of the workload (channels, senders)', positive('--seed', true), 15)
  .option('--keep', 'keep the run directory (logs, data) even when the run passes', false)
  .option('--strict', 'also fail when a figure misses its target', false)
  .option('--dump <file>', 'write the recorded history as JSON (one scenario only)')
  .option('--no-build', 'run dist/ as it is (the caller built it) instead of building it when older than the sources')
  .showHelpAfterError()
  .exitOverride();

let scenarioName: string;
let opts: { minutes: number; nodes: number; clients: number; channels: number; rate: number; leaseTtlS: number; killEveryS: number; restartAfterS: number; leaversPerNode: number; store: string; redis: boolean; seed: number; keep: boolean; strict: boolean; build: boolean; dump?: string };
try {
  program.parse(process.argv);
  scenarioName = program.args[0]!;
  opts = program.opts();
  if (!NAMES.includes(scenarioName)) throw new Error(`unknown scenario "${scenarioName}"; one of: ${NAMES.join(', ')}`);
  if (opts.dump && scenarioName === 'all') throw new Error('--dump takes one scenario, not all');
} catch (err) {
  const e = err as { code?: string; exitCode?: number; message: string };
  if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') process.exit(0);
  if (!e.code?.startsWith('commander.')) process.stderr.write(`chaos: ${e.message}\n`);
  process.exit(2);
}

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const options: RunOptions = { ...opts, log, ...(opts.dump ? { dump: opts.dump } : {}) };

function printTable(figures: readonly Figure[], suites: readonly SuiteResult[]): void {
  const rows = [
    ...figures.map((f) => [f.scenario, f.name, f.target, f.measured, f.met === undefined ? '' : f.met ? 'met' : 'MISSED']),
    ...suites.map((s) => [s.suite, `${s.files.length} test files`, 'all pass', s.verdict, s.ok ? 'met' : 'MISSED']),
  ];
  const head = ['scenario', 'figure', 'target', 'measured', ''];
  process.stdout.write(`| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|\n`);
  for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
}

async function main(): Promise<number> {
  const faultNames = scenarioName === 'all' ? Object.keys(FAULTS) : scenarioName in FAULTS ? [scenarioName] : [];
  const suiteNames = (scenarioName === 'all' ? Object.keys(SUITES) : scenarioName in SUITES ? [scenarioName] : []) as SuiteName[];
  if (opts.build && (faultNames.length > 0 || suiteNames.length > 0)) ensureBuild(log);
  const results: ScenarioResult[] = [];
  for (const name of faultNames) {
    try {
      results.push(await runScenario(FAULTS[name]!, options));
    } catch (err) {
      log(`${name}: the run itself failed: ${(err as Error).stack ?? String(err)}`);
      results.push(failedRun(name, (err as Error).message));
    }
  }
  const suites: SuiteResult[] = [];
  for (const name of suiteNames) suites.push(await runSuite(name, log));
  printTable(
    results.flatMap((r) => r.figures),
    suites,
  );
  const ok = results.every((r) => r.ok) && suites.every((s) => s.ok);
  if (scenarioName !== 'all') {
    process.stdout.write(`${results[0]?.summary ?? suites[0]!.summary}\n`);
    return ok ? 0 : 1;
  }
  // `all`: the one line sums the counts and takes the worst reconnect p99 of the fault runs.
  const sum = (f: (r: ScenarioResult) => number) => results.reduce((a, r) => a + f(r), 0);
  const worst = results.reduce((a, r) => (r.check.reconnect.p99 > a.check.reconnect.p99 ? r : a), results[0]!);
  const line = summaryLine(
    { ...worst.check, ackedLost: sum((r) => r.check.ackedLost), duplicates: sum((r) => r.check.duplicates), orderViolations: sum((r) => r.check.orderViolations), gaps: sum((r) => r.check.gaps) },
    [...results.map((r) => `${r.scenario} ${r.ok ? 'ok' : 'FAILED'}`), ...suites.map((s) => `${s.suite} ${s.verdict}`)],
  );
  process.stdout.write(`${line}\n`);
  return ok ? 0 : 1;
}

/** A run that could not even complete (the cluster did not start, ...): failed, with the reason. */
function failedRun(scenario: string, why: string): ScenarioResult {
  const check = emptyReport([why]);
  return { scenario, check, figures: [{ scenario, name: 'the run completed', target: 'yes', measured: `no: ${why}`, met: false }], failures: [why], ok: false, summary: summaryLine(check, [`${scenario} did not complete: ${why}`]), dir: '' };
}

const code = await main();
// Exit once stdout is written: a socket or timer some client left behind must not keep the run alive.
process.stdout.write('', () => process.exit(code));
