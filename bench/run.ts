/**
 * The benchmark harness: one command for every scenario and target.
 *
 *   npm run bench -- --scenario smoke                                  (< 1 min; npm test runs it)
 *   npm run bench -- --scenario one-to-one --target parley,socketio,uws-raw --rate 5000 --duration 20 --out bench/results/NAME.json
 *   npm run bench -- --scenario connections --sessions 5000,19000
 *   npm run bench -- --scenario connections --target parley --nodes 14 --sessions 250000   (a cluster: etcd + 14 parleyd)
 *   npm run bench -- --scenario group --groups 50
 *   npm run bench -- --scenario max-throughput
 *   npm run bench -- --scenario max-throughput --target parley --scrape-metrics 1000   (what a 1 s /metrics scraper costs)
 *   npm run bench -- --scenario all
 *   npm run bench -- --scenario provision --sessions 250000           (parleyctl speed alone)
 *   npm run bench -- --report bench/results/NAME.json                 (redraw the report)
 *
 * Writes NAME.json (machine, versions, parameters, one entry per scenario and target), and next
 * to it NAME.md with tables and NAME.*.svg charts. Progress goes to stderr. Every server and
 * worker process it starts is killed by pid on exit, error or Ctrl-C.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { SETTINGS } from '../config/settings.ts';
import { DIST_ENTRY, ensureBuild } from './lib/build.ts';
import { killAllSync } from './lib/children.ts';
import { setWorkerNodeArgs, WorkerPool } from './lib/pool.ts';
import { machineInfo, versions } from './lib/machine.ts';
import { note } from './lib/progress.ts';
import { TARGETS, type TargetName } from './lib/protocol.ts';
import { writeReport, writeSummary, type ResultFile } from './lib/report.ts';
import {
  connections,
  group,
  smoke,
  maxThroughput,
  MAX_SESSIONS_PER_NODE,
  oneToOne,
  provisionOnly,
  type BenchConfig,
  type ResultEntry,
} from './lib/scenarios.ts';

const SCENARIOS = ['smoke', 'connections', 'one-to-one', 'group', 'max-throughput', 'all', 'provision'] as const;
type Scenario = (typeof SCENARIOS)[number];

const int = (name: string, min = 0) => (v: string): number => {
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
  return n;
};
const num = (name: string, min = 0) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${name} must be a number ≥ ${min}`);
  return n;
};
const intList = (name: string) => (v: string): number[] => v.split(',').map((x) => int(name, 1)(x.trim()));

function targetList(v: string): TargetName[] {
  const list = v.split(',').map((x) => x.trim()).filter(Boolean);
  for (const t of list) if (!(TARGETS as readonly string[]).includes(t)) throw new InvalidArgumentError(`unknown target ${t}; expected ${TARGETS.join(', ')}`);
  return list as TargetName[];
}

/** Whether parleyd can form a multi-node cluster in this build (it has cluster settings). */
function clusterSupported(): boolean {
  return (SETTINGS as readonly { key: string }[]).some((s) => /^(cluster|seeds|etcd|peers|membership)/.test(s.key));
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

interface Job {
  readonly scenario: string;
  readonly target: TargetName;
  readonly run: () => Promise<ResultEntry | ResultEntry[]>;
}

function smokeConfig(cfg: BenchConfig): BenchConfig {
  return {
    ...cfg,
    sessions: [200],
    holdS: 2,
    settleS: 1,
    pairs: 50,
    rate: 500,
    rates: [500],
    durationS: 3,
    warmupS: 0.5,
    drainS: 3,
    groups: 2,
    groupSize: 100,
    groupRate: 20,
    workers: 1,
    connectTimeoutS: 20,
  };
}

function jobsFor(scenario: Scenario, cfg: BenchConfig): Job[] {
  const jobs: Job[] = [];
  const each = (name: string, f: (t: TargetName) => Promise<ResultEntry | ResultEntry[]>): void => {
    for (const t of cfg.targets) jobs.push({ scenario: name, target: t, run: () => f(t) });
  };
  if (scenario === 'provision') {
    jobs.push({ scenario, target: 'parley', run: () => provisionOnly(cfg, Math.max(...cfg.sessions)) });
    return jobs;
  }
  if (scenario === 'smoke') {
    const s = smokeConfig(cfg);
    each('smoke', (t) => smoke(t, s));
    return jobs;
  }
  if (scenario === 'connections' || scenario === 'all') each('connections', (t) => connections(t, cfg));
  if (scenario === 'one-to-one' || scenario === 'all') for (const rate of cfg.rates) each('one-to-one', (t) => oneToOne(t, cfg, rate));
  if (scenario === 'max-throughput' || scenario === 'all') each('max-throughput', (t) => maxThroughput(t, cfg));
  if (scenario === 'group' || scenario === 'all') each('group', (t) => group(t, cfg, cfg.groupRate ?? (scenario === 'group' ? cfg.rate : undefined)));
  return jobs;
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('bench')
    .description('Parley benchmark harness (Parley vs Socket.IO vs raw uWebSockets.js)')
    .addOption(new Option('--scenario <name>', 'what to run').choices(SCENARIOS as unknown as string[]).default('smoke'))
    .option('--target <list>', 'targets, comma-separated', targetList, [...TARGETS])
    .option('--rate <n[,n...]>', 'offered messages/s (one-to-one; also group when --scenario group)', intList('--rate'))
    .option('--duration <s>', 'measured seconds per run', num('--duration', 0.5), 20)
    .option('--warmup <s>', 'unmeasured seconds at the same rate first', num('--warmup'), 3)
    .option('--drain <s>', 'after a run, wait at most this long for outstanding deliveries', num('--drain', 0.1), 5)
    .option('--pairs <n>', 'one-to-one and max-throughput: DM pairs (2 sessions each)', int('--pairs', 1), 1000)
    .option('--sessions <n[,n...]>', 'connections: sessions, or levels to step through (e.g. 5000,19000)', intList('--sessions'), [5_000, 19_000])
    .option('--hold <s>', 'connections: seconds to hold the sessions, heartbeating', num('--hold'), 60)
    .option('--settle <s>', 'connections: seconds to wait before measuring RSS at a level', num('--settle'), 5)
    .option('--groups <n>', 'group: number of groups', int('--groups', 1), 50)
    .option('--group-size <n>', 'group: members per group (all connected)', int('--group-size', 2), 100)
    .option('--group-rate <n>', 'group: fixed messages/s (default: step up to the highest rate that holds)', int('--group-rate', 1))
    .option('--group-start-rate <n>', 'group: first step, messages/s', int('--group-start-rate', 1), 200)
    .option(
      '--group-chatter',
      'group, parley only: during every run each member of every group also sends, once a second (members spread evenly over the second), a read mark (the highest channel_seq it has received there) and a typing notice; read receipts and typing notices received are counted apart (not deliveries, not in the latency); refused with any other target (the peers have no such frames)',
      false,
    )
    .option('--start-rate <n>', 'max-throughput: first step, messages/s', int('--start-rate', 1), 2_000)
    .option('--step-duration <s>', 'max-throughput/group: seconds per step', num('--step-duration', 0.5), 5)
    .option('--step-factor <x>', 'max-throughput/group: rate multiplier per step', num('--step-factor', 1.05), 1.5)
    .option('--max-steps <n>', 'max-throughput/group: at most this many steps', int('--max-steps', 1), 14)
    .option('--p99-limit <ms>', 'max-throughput/group: a step holds while p99 stays within this', num('--p99-limit', 0.1), 50)
    .option('--group-p99-limit <ms>', 'group: a step holds while p99 stays within this', num('--group-p99-limit', 0.1), 100)
    .option('--confirm-failures <n>', 'max-throughput/group: run a failed step again up to N times; it fails only if every run fails', int('--confirm-failures'), 1)
    .option('--workers <n>', 'load-generator processes (default: 2, more when sockets need it)', int('--workers', 1))
    .option('--nodes <n>', 'Parley nodes: more than 1 starts a cluster on this box (etcd, one shared SQLite file, one secret file) and each session picks its node by asking GET /v1/servers; peers stay one process', int('--nodes', 1), 1)
    .option('--connect-rate <n>', 'sessions started per second over all workers (0: as fast as --connect-concurrency allows)', int('--connect-rate'), 0)
    .addOption(new Option('--durability <d>', 'Parley SQLite durability').choices(['fsync', 'os']).default('fsync'))
    .option('--store <url>', 'Parley store (default: SQLite in a fresh data dir), e.g. cassandra://127.0.0.1:29042/parley_bench?replication=simple:1; users are provisioned into it under a prefix of their own')
    .option('--redis <url>', 'Parley presence in Redis (every node), e.g. redis://127.0.0.1:26379')
    .option('--text-bytes <n>', 'message text size', int('--text-bytes', 1), 64)
    .option('--heartbeat-ms <n>', 'heartbeat interval per session', int('--heartbeat-ms', 100), 5_000)
    .option('--ack-every <n>', 'Parley: ack deliveries every N (0: never)', int('--ack-every'), 32)
    .option('--connect-concurrency <n>', 'handshakes in flight per worker (default: 512 over all workers, 32..256 per worker)', int('--connect-concurrency', 1))
    .option('--connect-give-up <pct>', 'a load worker stops starting sessions once more than this % of those it started failed (at least 500): an overwhelmed server ends the connect phase early; 0: never', num('--connect-give-up'), 10)
    .option('--connect-timeout <s>', 'a session not up within this counts as failed', num('--connect-timeout', 1), 30)
    .option('--server-flag <key=value>', 'extra parleyd flag, repeatable (e.g. fanout-timeout-ms=10000)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--parleyd-entry <file>', `Parley entry point (default ${DIST_ENTRY}, the build \`npm start\` runs, made when stale; bin/parleyd.ts runs the sources under tsx)`)
    .option('--server-node-args <args>', 'extra Node.js arguments for every server process, space-separated (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof")')
    .option('--worker-node-args <args>', 'extra Node.js arguments for the load-generator workers, space-separated')
    .option('--out <file>', 'result JSON (the .md report and .svg charts go next to it)')
    .option('--report <json>', 'only redraw the report of an existing result file')
    .option('--summary <dir>', 'merge every result file in DIR into DIR/SUMMARY.md (goals checked across runs)')
    .option('--quiet-machine <pct>', 'before each measured run wait until other processes use at most this % of one core (0: never wait)', num('--quiet-machine'), 0)
    .option('--quiet-max-wait <s>', 'wait at most this long for a quiet machine, then run anyway (noted in the result)', num('--quiet-max-wait'), 300)
    .option('--contention-retries <n>', 'redo a measured run or step at most N times when other processes used more than 1.5 × --quiet-machine during it', int('--contention-retries'), 2)
    .addOption(new Option('--client <c>', 'load-generator WebSocket client: raw (lean, over net) or ws (the ws package)').choices(['raw', 'ws']).default('raw'))
    .option('--server-logs <dir>', 'copy the stdout and stderr of every Parley server process into DIR/<node id>.log')
    .option('--profile-hold <dir>', 'connections: write a V8 CPU profile of every server process during the hold into DIR (over the inspector)')
    .option('--no-gc', 'connections: read memory without forcing a GC in the server first (default: force one over the inspector)')
    .option('--scrape-metrics <ms>', 'Parley: GET /metrics of every node every MS during the run, as Prometheus would (to measure what scraping costs); 0: never', int('--scrape-metrics'), 0)
    .option('--metrics-dump <dir>', 'with --scrape-metrics: write DIR/<n>-<node id>.json per node: the first and last scrape and each series\' highest value')
    .option('--quiet', 'no progress output')
    .allowExcessArguments(false);
  program.parse(argv);
  const o = program.opts<Record<string, unknown>>();

  if (typeof o.summary === 'string') {
    for (const p of writeSummary(o.summary)) note(`wrote ${p}`);
    return 0;
  }
  if (typeof o.report === 'string') {
    const file = JSON.parse(readFileSync(o.report, 'utf8')) as ResultFile;
    for (const p of writeReport(file, o.report.replace(/\.json$/, '') + '.md')) note(`wrote ${p}`);
    return 0;
  }

  const scenario = o.scenario as Scenario;
  if (typeof o.workerNodeArgs === 'string') setWorkerNodeArgs(o.workerNodeArgs.split(/\s+/).filter(Boolean));
  const rates = (o.rate as number[] | undefined) ?? [scenario === 'all' ? 10_000 : 5_000];
  const cfg: BenchConfig = {
    targets: o.target as TargetName[],
    rate: (o.rate as number[] | undefined)?.[0],
    rates: scenario === 'all' && !o.rate ? [5_000, 10_000] : rates,
    durationS: o.duration as number,
    warmupS: o.warmup as number,
    drainS: o.drain as number,
    pairs: o.pairs as number,
    sessions: o.sessions as number[],
    holdS: o.hold as number,
    settleS: o.settle as number,
    groups: o.groups as number,
    groupSize: o.groupSize as number,
    groupRate: o.groupRate as number | undefined,
    groupStartRate: o.groupStartRate as number,
    groupChatter: o.groupChatter === true,
    startRate: o.startRate as number,
    stepS: o.stepDuration as number,
    stepFactor: o.stepFactor as number,
    maxSteps: o.maxSteps as number,
    p99LimitMs: o.p99Limit as number,
    groupP99LimitMs: o.groupP99Limit as number,
    workers: o.workers as number | undefined,
    nodes: o.nodes as number,
    connectRate: o.connectRate as number,
    giveUpPct: o.connectGiveUp as number,
    durability: o.durability as 'fsync' | 'os',
    ...(typeof o.store === 'string' ? { store: o.store } : {}),
    ...(typeof o.redis === 'string' ? { redis: o.redis } : {}),
    textBytes: o.textBytes as number,
    heartbeatMs: o.heartbeatMs as number,
    ackEvery: o.ackEvery as number,
    connectConcurrency: o.connectConcurrency as number | undefined,
    connectTimeoutS: o.connectTimeout as number,
    serverFlags: Object.fromEntries(
      (o.serverFlag as string[]).map((kv) => {
        const i = kv.indexOf('=');
        if (i <= 0) throw new InvalidArgumentError(`--server-flag ${kv}: expected key=value`);
        return [kv.slice(0, i).replace(/^--/, ''), kv.slice(i + 1)];
      }),
    ),
    parleydEntry: typeof o.parleydEntry === 'string' ? o.parleydEntry : DIST_ENTRY,
    serverNodeArgs: typeof o.serverNodeArgs === 'string' ? o.serverNodeArgs.split(/\s+/).filter(Boolean) : [],
    gcBeforeMemory: o.gc !== false,
    quietMachinePct: o.quietMachine as number,
    quietMaxWaitS: o.quietMaxWait as number,
    contentionRetries: o.contentionRetries as number,
    confirmFailures: o.confirmFailures as number,
    client: o.client as 'raw' | 'ws',
    profileHoldDir: typeof o.profileHold === 'string' ? resolve(o.profileHold) : undefined,
    serverLogDir: typeof o.serverLogs === 'string' ? resolve(o.serverLogs) : undefined,
    scrapeMetricsMs: o.scrapeMetrics as number,
    metricsDumpDir: typeof o.metricsDump === 'string' ? resolve(o.metricsDump) : undefined,
    quiet: o.quiet === true,
  };

  if (cfg.groupChatter && scenario !== 'group' && scenario !== 'all') {
    process.stderr.write(`bench: --group-chatter applies to the group scenario (--scenario group or all), not ${scenario}\n`);
    return 2;
  }
  if (cfg.groupChatter && cfg.targets.some((t) => t !== 'parley')) {
    process.stderr.write(
      `bench: --group-chatter: read marks and typing notices are Parley frames; ${cfg.targets.filter((t) => t !== 'parley').join(', ')} ha${cfg.targets.filter((t) => t !== 'parley').length === 1 ? 's' : 've'} none, so a comparison would not be like for like. Run it with --target parley (and the peers in a run of their own without it).\n`,
    );
    return 2;
  }
  if (cfg.targets.includes('parley') && cfg.parleydEntry === DIST_ENTRY) ensureBuild(note);
  if (cfg.nodes > 1 && !clusterSupported()) {
    process.stderr.write(`bench: --nodes ${cfg.nodes}: parleyd in this build runs a single node (no cluster settings); run with --nodes 1\n`);
    return 2;
  }
  if (cfg.nodes > 1 && scenario === 'smoke') {
    process.stderr.write(`bench: --nodes ${cfg.nodes}: the smoke scenario runs one node per target\n`);
    return 2;
  }
  if (cfg.nodes > 1023) {
    process.stderr.write(`bench: --nodes ${cfg.nodes}: node numbers go up to 1023\n`);
    return 2;
  }
  if (cfg.nodes > 1 && cfg.targets.some((t) => t !== 'parley')) note(`bench: --nodes ${cfg.nodes} applies to parley; ${cfg.targets.filter((t) => t !== 'parley').join(', ')} run as one process`);
  const maxSessions = Math.max(...cfg.sessions);
  if (scenario === 'connections' || scenario === 'all') {
    const one = cfg.targets.filter((t) => t !== 'parley' || cfg.nodes === 1);
    const limit = (t: TargetName): number => MAX_SESSIONS_PER_NODE * (t === 'parley' ? cfg.nodes : 1);
    const over = cfg.targets.filter((t) => maxSessions > limit(t));
    if (over.length > 0) {
      const need = Math.ceil(maxSessions / MAX_SESSIONS_PER_NODE);
      process.stderr.write(
        `bench: --sessions ${maxSessions}: one server process holds at most ${MAX_SESSIONS_PER_NODE.toLocaleString('en-US')} sessions (20,000 open files per process here), ` +
          `so ${maxSessions.toLocaleString('en-US')} need ${need} processes: ` +
          (one.some((t) => over.includes(t) && t !== 'parley') ? `${over.filter((t) => t !== 'parley').join(', ')} run${over.length === 1 ? 's' : ''} as one process; ` : '') +
          (over.includes('parley') ? `run parley with --nodes ${need} or more (a cluster on this box). ` : '') +
          `Provisioning that many users alone is measured by --scenario provision --sessions ${maxSessions}.\n`,
      );
      return 2;
    }
  }
  const users = Math.max(cfg.pairs * 2, cfg.groups * cfg.groupSize);
  if ((scenario === 'one-to-one' || scenario === 'max-throughput' || scenario === 'group' || scenario === 'all') && users > MAX_SESSIONS_PER_NODE) {
    process.stderr.write(`bench: ${users} sessions (pairs × 2 or groups × group size) exceed ${MAX_SESSIONS_PER_NODE} on one node\n`);
    return 2;
  }

  const out = resolve(typeof o.out === 'string' ? o.out : `bench/results/${scenario}-${stamp()}.json`);
  mkdirSync(dirname(out), { recursive: true });
  const started = performance.now();
  const file: ResultFile = {
    name: basename(out).replace(/\.json$/, ''),
    created_at: new Date().toISOString(),
    command: `npm run bench -- ${argv.slice(2).join(' ')}`.trim(),
    machine: machineInfo(),
    versions: versions(),
    parameters: { scenario, ...cfg, ...(scenario === 'smoke' ? { smoke: smokeConfig(cfg) } : {}) },
    results: [],
    failures: [],
    duration_s: 0,
  };
  const save = (): void => {
    file.duration_s = Math.round((performance.now() - started) / 100) / 10;
    writeFileSync(out, JSON.stringify(file, null, 2) + '\n');
  };
  for (const job of jobsFor(scenario, cfg)) {
    note(`== ${job.scenario} · ${job.target}`);
    try {
      const got = await job.run();
      for (const e of Array.isArray(got) ? got : [got]) {
        if (e.error) file.failures.push({ scenario: e.scenario, target: e.target, error: e.error });
        else file.results.push(e);
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      note(`!! ${job.scenario} · ${job.target} failed: ${message}`);
      file.failures.push({ scenario: job.scenario, target: job.target, error: message });
    }
    save();
  }
  WorkerPool.dropSpares();
  save();
  const written = writeReport(file, out.replace(/\.json$/, '') + '.md');
  note(`wrote ${out}`);
  for (const p of written) note(`wrote ${p}`);
  return file.failures.length > 0 ? 1 : 0;
}

main(process.argv)
  .then((code) => {
    killAllSync();
    process.exit(code);
  })
  .catch((err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killAllSync();
    process.exit(1);
  });
