/**
 * netem: 100 ± 20 ms and 1 % loss on every link between nodes, for the whole run. This kernel has
 * no netem qdisc, so every node advertises (`--grpc-advertise`) a proxy in front of its gRPC port
 * and the proxy shapes the bytes (chaos/tcp-proxy.ts): each chunk read waits 100 ± 20 ms, in
 * order, and 1 % of chunks wait 200 ms more, what a lost segment costs a TCP stream. Clients and
 * etcd are not slowed.
 *
 * Figure: delivery p99 (send start to the message handed to another member's app) ≤ 500 ms at
 * the run's rate, and nothing lost. Adds to the summary: `delivery p99 X ms, send p99 Y ms`.
 */
import { sleep } from '../cluster.ts';
import type { FaultReport, Scenario, ScenarioContext } from '../scenario.ts';

export const NETEM_LINK = { delayMs: 100, jitterMs: 20, stallChance: 0.01, stallMs: 200 } as const;

export const netem: Scenario = {
  name: 'netem',
  cluster: { grpcProxies: true },
  async faults(ctx: ScenarioContext): Promise<FaultReport> {
    for (const p of ctx.cluster.grpcProxies) p.shape(NETEM_LINK);
    ctx.log(`links between nodes: ${NETEM_LINK.delayMs} ± ${NETEM_LINK.jitterMs} ms, ${NETEM_LINK.stallChance * 100} % of reads stall ${NETEM_LINK.stallMs} ms`);
    await sleep(ctx.startedAt + ctx.durationMs - Date.now());
    // The settle runs on plain links, so that what is measured above is the shaped run only.
    for (const p of ctx.cluster.grpcProxies) p.shape(undefined);
    return {
      extras: (r) => [`delivery p99 ${r.delivery.p99} ms, send p99 ${r.sendAck.p99} ms`],
      figures: (r) => [
        { scenario: 'netem', name: 'delivery p99 under 100 ± 20 ms, 1 % loss', target: '<= 500 ms', measured: `${r.delivery.p99} ms (p50 ${r.delivery.p50} ms, n=${r.delivery.n})`, met: r.delivery.n > 0 && r.delivery.p99 <= 500 },
        { scenario: 'netem', name: 'send -> ack p99', target: 'informative', measured: `${r.sendAck.p99} ms (p50 ${r.sendAck.p50} ms)` },
      ],
      failures: [],
    };
  },
};
