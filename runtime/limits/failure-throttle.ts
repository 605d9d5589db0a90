/**
 * Counts failed attempts per key (an account name, say) and refuses further attempts for a
 * growing while once a key has failed `limit` times: a throttle, not a lock-out. Pure and
 * synchronous (time comes in as an argument), so whoever owns one serialises its calls and tests
 * drive it with their own clock.
 *
 * Rules, per key:
 * - An attempt is charged when it is admitted, before its outcome is known, and forgiven only by
 *   a success (which forgets the key). So attempts running at the same time cannot slip past the
 *   limit together: at most `limit` are admitted until a success or the end of a block, however
 *   many arrive at once. A charge whose outcome never comes (the caller died) stays a failure.
 * - The `limit`-th charge starts a block of `firstBlockMs`; while it lasts every attempt is
 *   refused, uncharged, with the time left. Each charge after it (one is admitted per block, when
 *   the block ends) doubles the block, up to `windowMs`.
 * - A key forgets its failures once it has been quiet (no charge, no block) for `windowMs`. So in
 *   any span of `windowMs` at most `limit` attempts are admitted before the first refusal; waiting
 *   out blocks buys a few more, each costing twice the wait of the one before.
 *
 * Memory is bounded: at most `capacity` keys. A new key past it evicts, among the least recently
 * charged, the first one still under the limit (then the least recently charged of all): flushing
 * a throttled key out takes `capacity` other keys each failed `limit` times.
 *
 * @example
 * const t = new FailureThrottle({ limit: 20, windowMs: 900_000, firstBlockMs: 1_000, capacity: 1_024 });
 * const a = t.admit('alice', now); // { admitted: true } ... the 21st within the window:
 * // { admitted: false, retryAfterMs: 1000 }
 * t.succeeded('alice');            // the owner got in: failures forgotten
 */
export interface FailureThrottleLimits {
  /** Charges admitted before the first block. */
  readonly limit: number;
  /** Quiet time after which a key's failures are forgotten; also the longest block. */
  readonly windowMs: number;
  /** The first block; each later one doubles it, up to `windowMs`. */
  readonly firstBlockMs: number;
  /** Keys held at most. */
  readonly capacity: number;
}

export type Admission = { readonly admitted: true } | { readonly admitted: false; readonly retryAfterMs: number };

/** One key's record, also the form it is saved in (see `snapshot`). */
export interface FailureRecord {
  /** Charges since the key was last forgotten. */
  readonly failures: number;
  /** When the last charge was made. */
  readonly lastMs: number;
  /** Attempts are refused until then (0: no block). */
  readonly blockedUntilMs: number;
}

const ADMITTED: Admission = { admitted: true };

export class FailureThrottle {
  /** In order of last charge, oldest first (a charge moves its key to the end). */
  private readonly records = new Map<string, FailureRecord>();

  constructor(private readonly limits: FailureThrottleLimits) {
    const { limit, windowMs, firstBlockMs, capacity } = limits;
    if (!(Number.isInteger(limit) && limit >= 1)) throw new RangeError(`limit must be a positive integer, got ${limit}`);
    if (!(firstBlockMs > 0 && windowMs >= firstBlockMs)) throw new RangeError(`need 0 < firstBlockMs <= windowMs, got ${firstBlockMs} and ${windowMs}`);
    if (!(Number.isInteger(capacity) && capacity >= 1)) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  }

  /** Keys held now. */
  get size(): number {
    return this.records.size;
  }

  /** Admits (and charges) an attempt for `key`, or refuses it with the time left of its block. */
  admit(key: string, nowMs: number): Admission {
    let r = this.current(key, nowMs);
    if (r !== undefined && nowMs < r.blockedUntilMs) return { admitted: false, retryAfterMs: r.blockedUntilMs - nowMs };
    const failures = (r?.failures ?? 0) + 1;
    const over = failures - this.limits.limit;
    const blockedUntilMs = over < 0 ? 0 : nowMs + Math.min(this.limits.windowMs, this.limits.firstBlockMs * 2 ** Math.min(over, 40));
    r = { failures, lastMs: nowMs, blockedUntilMs };
    this.records.delete(key);
    this.records.set(key, r);
    if (this.records.size > this.limits.capacity) this.evictOne(key);
    return ADMITTED;
  }

  /**
   * Takes back one charge of `key` whose attempt was never judged (refused for another reason
   * before its check): it was neither a failure nor a success. A block it started goes with it.
   */
  refund(key: string): void {
    const r = this.records.get(key);
    if (r === undefined) return;
    if (r.failures <= 1) {
      this.records.delete(key);
      return;
    }
    const failures = r.failures - 1;
    this.records.set(key, { ...r, failures, blockedUntilMs: failures < this.limits.limit ? 0 : r.blockedUntilMs });
  }

  /** The attempt was right: the key's failures (its own charge among them) are forgotten. */
  succeeded(key: string): void {
    this.records.delete(key);
  }

  /** Drops every key that has been quiet for the window; true when none is left. */
  sweep(nowMs: number): boolean {
    for (const [key, r] of this.records) if (this.quiet(r, nowMs)) this.records.delete(key);
    return this.records.size === 0;
  }

  /** The keys that still matter, oldest charge first, to carry over to another owner. */
  snapshot(nowMs: number): [string, FailureRecord][] {
    this.sweep(nowMs);
    return [...this.records];
  }

  /** Takes over saved records (kept over ones of the same key already here only when newer). */
  restore(saved: readonly (readonly [string, FailureRecord])[], nowMs: number): void {
    for (const [key, r] of saved) {
      const mine = this.records.get(key);
      if (this.quiet(r, nowMs) || (mine !== undefined && mine.lastMs >= r.lastMs)) continue;
      this.records.delete(key);
      this.records.set(key, r);
      if (this.records.size > this.limits.capacity) this.evictOne(key);
    }
  }

  private current(key: string, nowMs: number): FailureRecord | undefined {
    const r = this.records.get(key);
    if (r === undefined || !this.quiet(r, nowMs)) return r;
    this.records.delete(key);
    return undefined;
  }

  private quiet(r: FailureRecord, nowMs: number): boolean {
    return nowMs - Math.max(r.lastMs, r.blockedUntilMs) > this.limits.windowMs;
  }

  /**
   * Makes room, never at the expense of `keep` (the key just charged): were it the victim, a
   * table full of throttled keys would leave every new key uncounted.
   */
  private evictOne(keep: string): void {
    let oldest: string | undefined;
    for (const [key, r] of this.records) {
      if (key === keep) continue;
      oldest ??= key;
      if (r.failures < this.limits.limit) {
        this.records.delete(key);
        return;
      }
    }
    if (oldest !== undefined) this.records.delete(oldest);
  }
}
