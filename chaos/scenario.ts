/**
 * One fault scenario run end to end: a cluster (cluster.ts), the workload (workload.ts), the
 * scenario's faults while the load runs, then the settle (load stopped, every fault healed, every
 * device back), the final reads, the checker, and the report: a table of figures and exactly one
 * summary line, last.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, invariantsHold, summaryLine, type CheckReport } from './checker.ts';
import { ChaosCluster, sleep, type ChaosClusterOptions } from './cluster.ts';
import { Workload } from './workload.ts';

export interface RunOptions {
  readonly minutes: number;
  readonly nodes: number;
  readonly clients: number;
  readonly channels: number;
  readonly rate: number;
  readonly leaseTtlS: number;
  readonly store: string;
  readonly redis: boolean;
  readonly seed: number;
  readonly killEveryS: number;
  readonly restartAfterS: number;
  readonly leaversPerNode: number;
  /** Keep the run's directory (logs, data) even when it passes. */
  readonly keep: boolean;
  /** Missed figure targets fail the run too, not only broken invariants. */
  readonly strict: boolean;
  /** Write the recorded History here as JSON. */
  readonly dump?: string;
  readonly log: (line: string) => void;
}

/** A figure of the issue: what was measured against its target. */
export interface Figure {
  readonly scenario: string;
  readonly name: string;
  readonly target: string;
  readonly measured: string;
  /** undefined: informative, no target. */
  readonly met?: boolean;
}

/** What a scenario's faults add to the run's report, some of it read off the checker's. */
export interface FaultReport {
  /** Appended to the summary line, after the contract's five figures. */
  extras(r: CheckReport): string[];
  figures(r: CheckReport): Figure[];
  /** Invariants of the scenario itself that failed (e.g. a cut node kept serving). */
  readonly failures: string[];
}

export interface ScenarioContext {
  readonly cluster: ChaosCluster;
  readonly workload: Workload;
  readonly options: RunOptions;
  /** When the load started. */
  readonly startedAt: number;
  readonly durationMs: number;
  readonly ttlMs: number;
  readonly log: (line: string) => void;
}

export interface Scenario {
  readonly name: string;
  /** Cluster options of its own (proxies). */
  readonly cluster?: Partial<Pick<ChaosClusterOptions, 'etcdProxies' | 'grpcProxies'>>;
  /** Runs its faults while the load runs, for about `ctx.durationMs`, and leaves everything healed. */
  faults(ctx: ScenarioContext): Promise<FaultReport>;
}

export interface ScenarioResult {
  readonly scenario: string;
  readonly check: CheckReport;
  readonly figures: Figure[];
  readonly failures: string[];
  readonly ok: boolean;
  readonly summary: string;
  readonly dir: string;
}

export async function runScenario(scenario: Scenario, o: RunOptions): Promise<ScenarioResult> {
  const dir = mkdtempSync(join(tmpdir(), `parley-chaos-${scenario.name}-`));
  const log = (line: string) => o.log(`[${scenario.name} +${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`);
  const t0 = Date.now();
  log(`run directory ${dir}`);
  const cluster = await ChaosCluster.start({
    nodes: o.nodes,
    leaseTtlS: o.leaseTtlS,
    dir,
    store: o.store,
    redis: o.redis,
    // Generous login allowance: a run signs up hundreds of users from one address.
    flags: { 'auth-per-minute': '100000' },
    log,
    ...scenario.cluster,
  });
  let workload: Workload | undefined;
  // A failed run keeps its directory (every node's log, etcd, the store) for a post-mortem.
  let keep = o.keep;
  try {
    workload = new Workload({
      nodes: cluster.nodes.map((n) => ({ nodeId: n.nodeId, baseUrl: n.baseUrl, wsUrl: n.wsUrl })),
      clients: o.clients,
      channels: o.channels,
      ratePerSec: o.rate,
      leaversPerNode: o.leaversPerNode,
      seed: o.seed,
      log,
    });
    await workload.setup();
    const ttlMs = o.leaseTtlS * 1000;
    const durationMs = Math.round(o.minutes * 60_000);
    const startedAt = Date.now();
    workload.start();
    log(`load: ${o.rate} msg/s for ${(durationMs / 1000).toFixed(0)} s`);
    const fault = await scenario.faults({ cluster, workload, options: o, startedAt, durationMs, ttlMs, log });
    const left = startedAt + durationMs - Date.now();
    if (left > 0) await sleep(left);
    log(`load stops (${workload.counts.sent} sends started, ${workload.counts.skipped} ticks skipped); settling`);
    // Everything is healed: a send still unacknowledged after two lease times plus the ask
    // timeouts is abandoned (never acked, so never counted lost).
    await workload.stopSending(2 * ttlMs + 25_000);
    for (const n of cluster.nodes) if (n.isPaused) n.resume();
    for (const n of cluster.nodes) if (!n.running) await n.start();
    await cluster.waitForView(cluster.nodes.map((n) => n.nodeId), 60_000);
    await workload.bringBackAll(60_000);
    const final = await workload.finish(Date.now() + 60_000);
    const history = workload.recorder.history({ members: workload.members, ...final });
    if (o.dump) writeFileSync(o.dump, JSON.stringify(history));
    const report = check(history);
    const figures = [...commonFigures(scenario.name, report, ttlMs), ...fault.figures(report)];
    const ok = invariantsHold(report) && fault.failures.length === 0 && (!o.strict || figures.every((f) => f.met !== false));
    const summary = summaryLine(report, fault.extras(report));
    for (const p of report.problems.slice(0, 40)) log(`problem: ${p}`);
    for (const f of fault.failures) log(`failure: ${f}`);
    if (!invariantsHold(report) || fault.failures.length > 0) keep = true;
    return { scenario: scenario.name, check: report, figures, failures: fault.failures, ok, summary, dir };
  } catch (err) {
    keep = true;
    throw err;
  } finally {
    workload?.closeAll();
    await cluster.stop();
    if (!keep) rmSync(dir, { recursive: true, force: true });
    else log(`kept ${dir}`);
  }
}

/** The figures every fault scenario shares, from the checker's report. */
export function commonFigures(scenario: string, r: CheckReport, ttlMs: number): Figure[] {
  return [
    { scenario, name: 'acked lost', target: '0', measured: String(r.ackedLost), met: r.ackedLost === 0 },
    { scenario, name: 'duplicates', target: '0', measured: String(r.duplicates), met: r.duplicates === 0 },
    { scenario, name: 'order violations', target: '0', measured: String(r.orderViolations), met: r.orderViolations === 0 },
    { scenario, name: 'gaps', target: '0', measured: String(r.gaps), met: r.gaps === 0 },
    // The bound is the kill-loop's (a killed node's sockets close at once); elsewhere the
    // app first has to find out (a paused node's sockets stay open), so the figure is informative.
    scenario === 'kill-loop'
      ? { scenario, name: 'reconnect + resume p99', target: `<= ${ttlMs + 2_000} ms (TTL + 2 s)`, measured: reconnectText(r), met: r.reconnect.p99 <= ttlMs + 2_000 && r.reconnect.stuck === 0 }
      : { scenario, name: 'reconnect + resume p99 (from the last good probe)', target: 'informative', measured: reconnectText(r) },
    { scenario, name: 'presence shown in time', target: 'every expectation within its bound', measured: `${r.presence.expectations - r.presence.late - r.presence.never}/${r.presence.expectations} (late ${r.presence.late}, never ${r.presence.never}, p99 ${r.presence.p99Ms} ms)`, met: r.presence.late === 0 && r.presence.never === 0 },
    { scenario, name: 'sends', target: '', measured: `${r.sends.acked} acked of ${r.sends.total}; send->ack p99 ${r.sendAck.p99} ms; delivery p99 ${r.delivery.p99} ms` },
  ];
}

function reconnectText(r: CheckReport): string {
  return `${r.reconnect.p99} ms (n=${r.reconnect.n}, max ${r.reconnect.max} ms, stuck ${r.reconnect.stuck})`;
}
