/**
 * kill-loop: SIGKILL a node every `--kill-every-s` (30 s), the first 10 s into the load (or a
 * period in, if shorter), and start it again `--restart-after-s` (5 s) later; nodes in turn.
 * Leavers connected to the killed node go away with it and come back once the watchers were shown
 * them offline (at most TTL + 15 s after the kill), so a late offline is measured, not hidden.
 *
 * Adds to the summary: `K kills`. Figures: kills and restarts, presence (offline within TTL + 5 s
 * of the kill, online within 2 s of coming back).
 */
import { sleep } from '../cluster.ts';
import type { FaultReport, Scenario, ScenarioContext } from '../scenario.ts';
import { bringBack, expectGone, planDeparture, untilShownGone } from './presence-probe.ts';

export const killLoop: Scenario = {
  name: 'kill-loop',
  async faults(ctx: ScenarioContext): Promise<FaultReport> {
    const { cluster, options: o } = ctx;
    const period = o.killEveryS * 1000;
    const restartAfter = o.restartAfterS * 1000;
    const end = ctx.startedAt + ctx.durationMs;
    const failures: string[] = [];
    const pending: Promise<void>[] = [];
    let kills = 0;
    let restarts = 0;
    for (let k = 0; ; k++) {
      const at = ctx.startedAt + Math.min(10_000, period) + k * period;
      // Only a kill whose restart happens while the load still runs.
      if (at + restartAfter > end) break;
      await sleep(at - Date.now());
      const target = cluster.nodes[k % cluster.nodes.length]!;
      if (!target.running) await target.start(); // a restart that had not finished yet
      const departure = planDeparture(ctx, target.nodeId);
      const killedAt = Date.now();
      await target.kill();
      kills++;
      expectGone(ctx, departure, killedAt, `${target.nodeId} killed`);
      ctx.log(`SIGKILL ${target.nodeId} (${departure.leavers.length} leavers on it)`);
      pending.push(
        (async () => {
          await sleep(killedAt + restartAfter - Date.now());
          try {
            await target.start();
            restarts++;
            ctx.log(`${target.nodeId} restarted ${Date.now() - killedAt} ms after the kill`);
          } catch (err) {
            failures.push(`${target.nodeId} did not restart: ${(err as Error).message}`);
          }
          await untilShownGone(ctx, departure, killedAt, killedAt + ctx.ttlMs + 15_000);
          await bringBack(ctx, departure, `back after ${target.nodeId} was killed`);
        })(),
      );
    }
    await Promise.all(pending);
    return {
      extras: () => [`${kills} kills`],
      figures: () => [{ scenario: 'kill-loop', name: 'kills (SIGKILL, restart after)', target: `every ${o.killEveryS} s, restart after ${o.restartAfterS} s`, measured: `${kills} kills, ${restarts} restarts`, met: restarts === kills }],
      failures,
    };
  },
};
