/**
 * store-restart: the services Parley depends on go down abruptly (SIGKILL) and come back after
 * 3 s, one every max(20 s, run / 4), in turn: Redis (presence; restarted empty, it keeps nothing),
 * etcd (membership; same data), and Cassandra when the run started its own (`--store cassandra`;
 * an external `cassandra://` URL is not this run's to restart, and is left alone). With the
 * embedded store (SQLite, shared by the nodes of this box) there is no store process to restart.
 *
 * Adds to the summary: `N restarts`.
 */
import { sleep } from '../cluster.ts';
import type { FaultReport, Scenario, ScenarioContext } from '../scenario.ts';

const DOWN_MS = 3_000;

export const storeRestart: Scenario = {
  name: 'store-restart',
  async faults(ctx: ScenarioContext): Promise<FaultReport> {
    const { cluster } = ctx;
    const services: ('redis' | 'etcd' | 'cassandra')[] = [...(cluster.hasRedis ? (['redis'] as const) : []), 'etcd', ...(cluster.ownsCassandra ? (['cassandra'] as const) : [])];
    if (ctx.options.store.startsWith('cassandra://')) ctx.log(`the Cassandra at ${ctx.options.store} was not started by this run: it is not restarted (use --store cassandra)`);
    const period = Math.max(20_000, Math.floor(ctx.durationMs / 4));
    const end = ctx.startedAt + ctx.durationMs;
    const done: Record<string, number> = {};
    const failures: string[] = [];
    for (let k = 0; ; k++) {
      const at = ctx.startedAt + Math.min(10_000, Math.floor(ctx.durationMs / 4)) + k * period;
      // Cassandra takes up to a minute to come back; the others a second or two.
      const which = services[k % services.length]!;
      if (at + DOWN_MS + (which === 'cassandra' ? 60_000 : 5_000) > end) break;
      await sleep(at - Date.now());
      const t0 = Date.now();
      try {
        if (which === 'redis') await cluster.restartRedis(DOWN_MS);
        else if (which === 'etcd') await cluster.restartEtcd(DOWN_MS);
        else await cluster.restartCassandra(DOWN_MS);
        done[which] = (done[which] ?? 0) + 1;
        ctx.log(`restarted ${which} (down ${DOWN_MS} ms, back after ${Date.now() - t0} ms)`);
      } catch (err) {
        failures.push(`${which} did not come back: ${(err as Error).message}`);
      }
    }
    const total = Object.values(done).reduce((a, b) => a + b, 0);
    const detail = Object.entries(done).map(([k, v]) => `${k} x${v}`).join(', ') || 'none';
    return {
      extras: () => [`${total} restarts`],
      figures: () => [{ scenario: 'store-restart', name: 'service restarts (SIGKILL, 3 s down)', target: services.join(', '), measured: detail, met: total > 0 }],
      failures,
    };
  },
};
