/**
 * The presence figures of a node fault, shared by the scenarios that take a node away: the
 * leavers on that node go away with it (their phone dies), the watchers elsewhere must be shown
 * them offline within TTL + 5 s; later the leavers come back and must be shown online within 2 s
 * of their welcome.
 */
import type { CarefulDevice } from '../device.ts';
import type { WorkloadUser } from '../workload.ts';
import type { ScenarioContext } from '../scenario.ts';

export interface Departure {
  readonly leavers: readonly WorkloadUser[];
  readonly observers: readonly CarefulDevice[];
}

/** Before the fault: the leavers on `nodeId` will go away with it; the watchers elsewhere observe. */
export function planDeparture(ctx: ScenarioContext, nodeId: string): Departure {
  const leavers = ctx.workload.leaversOn(nodeId);
  for (const l of leavers) l.devices[0]!.planLeave();
  return { leavers, observers: ctx.workload.watchersNotOn(nodeId) };
}

/** Right after the fault at `atMs`: every observer must be shown every leaver offline within TTL + 5 s. */
export function expectGone(ctx: ScenarioContext, d: Departure, atMs: number, why: string): void {
  for (const l of d.leavers) {
    for (const o of d.observers) {
      ctx.workload.recorder.expectations.push({ observer: o.name, subject: l.userId, online: false, fromMs: atMs, withinMs: ctx.ttlMs + 5_000, why });
    }
  }
}

/**
 * Waits until every observer was shown every leaver offline after `sinceMs` (the fault), or until
 * `untilMs`: a leaver that came back sooner would turn a late "offline" into one never shown.
 */
export async function untilShownGone(ctx: ScenarioContext, d: Departure, sinceMs: number, untilMs: number): Promise<void> {
  const shown = () =>
    d.leavers.every((l) =>
      d.observers.every((o) => ctx.workload.recorder.presence.some((p) => p.observer === o.name && p.subject === l.userId && !p.online && p.atMs > sinceMs)),
    );
  while (!shown() && Date.now() < untilMs) await new Promise((r) => setTimeout(r, 100));
}

/** The leavers come back; each watcher up must be shown each one online within 2 s of its welcome. */
export async function bringBack(ctx: ScenarioContext, d: Departure, why: string): Promise<void> {
  await Promise.all(
    d.leavers.map(async (l) => {
      const phone = l.devices[0]!;
      if (!phone.isAway) return;
      try {
        const welcomedAt = await phone.open(30_000);
        for (const o of ctx.workload.watcherDevices().filter((w) => w.isUp)) {
          ctx.workload.recorder.expectations.push({ observer: o.name, subject: l.userId, online: true, fromMs: welcomedAt, withinMs: 2_000, why });
        }
      } catch (err) {
        ctx.log(`${phone.name} did not come back: ${(err as Error).message}`);
      }
    }),
  );
}
