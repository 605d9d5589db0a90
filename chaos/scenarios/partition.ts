/**
 * partition: cut one node from etcd (the proxy in front of etcd for that node holds every byte,
 * chaos/tcp-proxy.ts) for max(3 x TTL, 10 s) while it keeps its clients and its links to the other
 * nodes, then heal; every max(30 s, cut + 20 s), nodes in turn.
 *
 * The cut node must stop serving within the TTL: its lease lapses in etcd and the others take its
 * actors over, so anything it did after that could be a second owner at work. Measured two ways:
 * when its GET /readyz turns 503 (its own verdict), and whether any send it accepted more than
 * TTL + 0.5 s after the cut was acknowledged through it before the heal (it must refuse them:
 * UNAVAILABLE, the app moves on). After the heal it rejoins, and nothing acked is lost.
 *
 * Adds to the summary: `cut node stopped serving after X ms` (the slowest of the cuts).
 */
import { sleep } from '../cluster.ts';
import type { FaultReport, Scenario, ScenarioContext } from '../scenario.ts';

export const partition: Scenario = {
  name: 'partition',
  cluster: { etcdProxies: true },
  async faults(ctx: ScenarioContext): Promise<FaultReport> {
    const { cluster, workload } = ctx;
    const cutMs = Math.max(3 * ctx.ttlMs, 10_000);
    const period = Math.max(30_000, cutMs + 20_000);
    const end = ctx.startedAt + ctx.durationMs;
    const failures: string[] = [];
    const stopped: number[] = [];
    const rejoined: number[] = [];
    let servedAfter = 0;
    for (let k = 0; ; k++) {
      const at = ctx.startedAt + Math.min(10_000, Math.floor(ctx.durationMs / 4)) + k * period;
      if (at + cutMs > end) break;
      await sleep(at - Date.now());
      const i = k % cluster.nodes.length;
      const target = cluster.nodes[i]!;
      const proxy = cluster.etcdProxies[i]!;
      const others = cluster.nodes.filter((n) => n !== target);
      const cutAt = Date.now();
      proxy.cut();
      ctx.log(`cut ${target.nodeId} from etcd for ${cutMs} ms`);
      let stoppedAt: number | undefined;
      while (Date.now() < cutAt + cutMs) {
        if ((await target.readyz(500)) !== 200) {
          stoppedAt = Date.now();
          break;
        }
        await sleep(100);
      }
      const leftMs = await cluster
        .waitForView(others.map((n) => n.nodeId), cutMs, others)
        .then(() => Date.now() - cutAt)
        .catch(() => undefined);
      await sleep(cutAt + cutMs - Date.now());
      const healedAt = Date.now();
      proxy.heal();
      const through = workload.recorder.sends.filter((s) => s.ack?.node === target.nodeId && s.startedAtMs > cutAt + ctx.ttlMs + 500 && s.ack.atMs < healedAt);
      servedAfter += through.length;
      if (stoppedAt === undefined) failures.push(`${target.nodeId} still reported ready ${cutMs} ms after it was cut from etcd`);
      else {
        stopped.push(stoppedAt - cutAt);
        if (stoppedAt - cutAt > ctx.ttlMs) failures.push(`${target.nodeId} stopped serving ${stoppedAt - cutAt} ms after the cut, past the ${ctx.ttlMs} ms TTL`);
      }
      if (through.length > 0) failures.push(`${through.length} sends started more than TTL + 0.5 s after ${target.nodeId} was cut were acknowledged through it`);
      try {
        rejoined.push(await cluster.waitForView(cluster.nodes.map((n) => n.nodeId), 60_000));
      } catch (err) {
        failures.push(`${target.nodeId} did not rejoin after the heal: ${(err as Error).message}`);
      }
      ctx.log(`healed ${target.nodeId}: stopped serving after ${stoppedAt === undefined ? 'never' : `${stoppedAt - cutAt} ms`}, the others saw it leave after ${leftMs ?? 'never'} ms`);
    }
    const slowest = stopped.length > 0 ? Math.max(...stopped) : undefined;
    return {
      extras: () => [`cut node stopped serving after ${slowest ?? 'never'} ms`],
      figures: () => [
        { scenario: 'partition', name: 'the cut node stops serving', target: `within the TTL (${ctx.ttlMs} ms)`, measured: `${stopped.length} cuts: ${stopped.join(', ') || '-'} ms (GET /readyz 503)`, met: stopped.length > 0 && slowest! <= ctx.ttlMs },
        { scenario: 'partition', name: 'sends acknowledged through a cut node past TTL + 0.5 s', target: '0', measured: String(servedAfter), met: servedAfter === 0 },
        { scenario: 'partition', name: 'rejoin after the heal', target: '', measured: `${rejoined.join(', ') || '-'} ms` },
      ],
      failures,
    };
  },
};
