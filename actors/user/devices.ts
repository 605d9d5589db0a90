import { SmallMap } from './small-map.ts';

/** A device of the user, connected through one session. */
export interface Device {
  readonly session: string;
  touchedMs: number;
}

/**
 * The user's connected devices (one session each): who to push to, and whether the user is
 * online. Absent until the first device connects: most user actors (offline users reached by a
 * message) never hold one.
 */
export class Devices {
  private map: SmallMap<string, Device> | undefined;

  get size(): number {
    return this.map?.size ?? 0;
  }

  get(deviceId: string): Device | undefined {
    return this.map?.get(deviceId);
  }

  *sessions(): IterableIterator<string> {
    if (this.map) for (const [, d] of this.map) yield d.session;
  }

  /** Whether any device was heard from at or after `cutoffMs` (one silent past that counts as offline). */
  anyTouchedSince(cutoffMs: number): boolean {
    if (this.map) for (const [, d] of this.map) if (d.touchedMs >= cutoffMs) return true;
    return false;
  }

  /** Registers the device's session; returns the session it replaces, if another. */
  register(deviceId: string, session: string, nowMs: number): Device | undefined {
    this.map ??= new SmallMap();
    const prior = this.map.get(deviceId);
    this.map.set(deviceId, { session, touchedMs: nowMs });
    return prior;
  }

  /** Removes the device if `session` is still its session (a superseded one reporting late is not). */
  remove(deviceId: string, session: string): boolean {
    const d = this.map?.get(deviceId);
    if (!d || d.session !== session) return false;
    this.map!.delete(deviceId);
    if (this.map!.size === 0) this.map = undefined;
    return true;
  }

  /** Drops devices last heard before `cutoffMs`, or that `gone` names; true if any went. */
  expire(cutoffMs: number, gone?: (d: Device) => boolean): boolean {
    if (!this.map) return false;
    let removed = false;
    for (const [id, d] of this.map) {
      if (d.touchedMs < cutoffMs || gone?.(d)) {
        this.map.delete(id);
        removed = true;
      }
    }
    if (this.map.size === 0) this.map = undefined;
    return removed;
  }

  /** Whether any device's session lives on `node` (session keys are `<node id>.<n>`). */
  anyOn(node: string): boolean {
    for (const s of this.sessions()) if (sessionNode(s) === node) return true;
    return false;
  }
}

/** Session keys are `<node id>.<connection number>`. */
export function sessionNode(sessionKey: string): string {
  return sessionKey.slice(0, sessionKey.lastIndexOf('.'));
}
