/**
 * pause: SIGSTOP a node for 2 x the lease TTL, then SIGCONT, every max(30 s, 2 TTL + 20 s), the
 * first 10 s into the load (or a quarter of the run in, if shorter). While it is stopped the others
 * take its actors over; when it resumes it must not write with its stale owner epoch: the store
 * refuses its appends (FENCED) and the presence directory its presence writes (the fence of
 * issue 15), so no app is shown a user online who has no device.
 *
 * Leavers connected to the paused node drop it (their watchdog finds it silent) and stay away
 * until a window after the resume has passed, during which the watchers ask for their presence
 * every 250 ms: any "online" shown then is a stale write that took effect.
 *
 * Adds to the summary: `N stale-epoch writes seen (M refused)`, where N counts stale states
 * shown to apps (the checker's stale online) and M the stale writes the nodes refused (their
 * log lines: a presence write refused by the fence, a store write refused FENCED).
 */
import { sleep } from '../cluster.ts';
import type { FaultReport, Scenario, ScenarioContext } from '../scenario.ts';
import { bringBack, expectGone, planDeparture, untilShownGone } from './presence-probe.ts';

export const pause: Scenario = {
  name: 'pause',
  async faults(ctx: ScenarioContext): Promise<FaultReport> {
    const { cluster, workload } = ctx;
    const pauseMs = 2 * ctx.ttlMs;
    const watchMs = Math.max(10_000, ctx.ttlMs + 5_000);
    const period = Math.max(30_000, pauseMs + watchMs + 10_000);
    const end = ctx.startedAt + ctx.durationMs;
    let pauses = 0;
    const windowsBefore = workload.recorder.offlineWindows.length;
    for (let k = 0; ; k++) {
      const at = ctx.startedAt + Math.min(10_000, Math.floor(ctx.durationMs / 4)) + k * period;
      if (at + pauseMs > end) break;
      await sleep(at - Date.now());
      const target = cluster.nodes[k % cluster.nodes.length]!;
      const departure = planDeparture(ctx, target.nodeId);
      const pausedAt = Date.now();
      target.pause();
      pauses++;
      expectGone(ctx, departure, pausedAt, `${target.nodeId} paused`);
      ctx.log(`SIGSTOP ${target.nodeId} for ${pauseMs} ms (${departure.leavers.length} leavers on it)`);
      await sleep(pauseMs);
      const resumedAt = Date.now();
      target.resume();
      ctx.log(`SIGCONT ${target.nodeId}`);
      const subjects = departure.leavers.map((l) => l.userId);
      const watchers = workload.watcherDevices();
      for (const s of subjects) {
        for (const w of watchers) workload.recorder.offlineWindows.push({ observer: w.name, subject: s, goneSinceMs: pausedAt, fromMs: resumedAt, toMs: resumedAt + watchMs, why: `${target.nodeId} resumed after ${pauseMs} ms stopped` });
      }
      if (subjects.length > 0) await workload.pollPresence(watchers, subjects, resumedAt + watchMs, 250);
      else await sleep(watchMs);
      await untilShownGone(ctx, departure, pausedAt, pausedAt + ctx.ttlMs + 15_000);
      await bringBack(ctx, departure, `back after ${target.nodeId} was paused`);
    }
    const presenceRefused = cluster.count('stalePresenceRefused');
    const storeRefused = cluster.count('fenced');
    const windows = workload.recorder.offlineWindows.length - windowsBefore;
    return {
      extras: (r) => [`${r.presence.staleOnline} stale-epoch writes seen (${presenceRefused + storeRefused} refused)`],
      figures: (r) => [
        { scenario: 'pause', name: 'pauses (SIGSTOP 2 x TTL, then SIGCONT)', target: '', measured: `${pauses} pauses, ${windows} (watcher, leaver) pairs watched after the resume` },
        { scenario: 'pause', name: 'writes with a stale epoch that took effect', target: '0', measured: `${r.presence.staleOnline} stale states shown to apps`, met: r.presence.staleOnline === 0 },
        { scenario: 'pause', name: 'stale writes refused by the fences', target: 'informative', measured: `${presenceRefused} presence, ${storeRefused} store (FENCED log lines)` },
      ],
      failures: [],
    };
  },
};
