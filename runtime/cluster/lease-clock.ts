/**
 * When may this node still trust its own registry lease, judged by its own monotonic clock.
 *
 * A renewal is counted from the moment the keepalive request was *sent*: the registry restarts
 * the TTL when it receives the request, which is later, so the lease is valid at least until
 * sentAt + TTL whatever the network delay. The node calls itself healthy only up to
 * sentAt + TTL * margin, leaving (1 - margin) * TTL for in-flight work to stop before another
 * node could possibly be given what this node owns.
 */
export class LeaseClock {
  private renewedAtMs: number | undefined;
  private ttlMs = 0;
  private lost = true;

  /** `margin` in (0, 1]: the fraction of the TTL after the last renewal that counts as safe. */
  constructor(readonly margin: number) {
    if (!(margin > 0 && margin <= 1)) throw new RangeError(`margin must be in (0, 1], got ${margin}`);
  }

  /** A keepalive (or grant) sent at `sentAtMs` succeeded and the registry reported `ttlMs`. */
  renewed(sentAtMs: number, ttlMs: number): void {
    // Responses can complete out of order; an older send never moves the deadline back.
    if (this.renewedAtMs === undefined || this.lost || sentAtMs > this.renewedAtMs) this.renewedAtMs = sentAtMs;
    this.ttlMs = ttlMs;
    this.lost = false;
  }

  /** The registry said the lease is gone (or we gave it up): unhealthy until the next renewal. */
  markLost(): void {
    this.lost = true;
  }

  /** Until when (monotonic ms) this node may act as a member; -Infinity when it may not. */
  healthyUntil(): number {
    if (this.lost || this.renewedAtMs === undefined) return Number.NEGATIVE_INFINITY;
    return this.renewedAtMs + this.ttlMs * this.margin;
  }

  /** Until when the lease itself is certainly still valid, by our clock. */
  validUntil(): number {
    if (this.lost || this.renewedAtMs === undefined) return Number.NEGATIVE_INFINITY;
    return this.renewedAtMs + this.ttlMs;
  }

  isHealthy(nowMs: number): boolean {
    return nowMs < this.healthyUntil();
  }
}
