/**
 * A token bucket: `ratePerSec` sustained, `burst` at once. State is two numbers, refilled lazily
 * on use, so a million idle buckets cost no timers.
 */
export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    now = Date.now(),
  ) {
    this.tokens = burst;
    this.lastMs = now;
  }

  take(n = 1, now = Date.now()): boolean {
    const elapsed = now - this.lastMs;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerSec) / 1000);
      this.lastMs = now;
    }
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /** True when the bucket would be full by `now`: forgetting it then changes nothing. */
  isFull(now = Date.now()): boolean {
    return this.tokens + ((now - this.lastMs) * this.ratePerSec) / 1000 >= this.burst;
  }
}

/**
 * Buckets per key (a client address, a user), forgetting keys that have been full for a while:
 * at most once a minute the full ones are dropped (a full bucket and no bucket behave alike), so
 * memory follows the keys active in the last minute or so, not every key ever seen.
 */
export class KeyedRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();
  private lastPruneMs = Date.now();

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
  ) {}

  /** Keys held now: those seen since the last prune, plus those not yet refilled. */
  get size(): number {
    return this.buckets.size;
  }

  take(key: string, now = Date.now()): boolean {
    if (now - this.lastPruneMs > 60_000) {
      for (const [k, bucket] of this.buckets) if (bucket.isFull(now)) this.buckets.delete(k);
      this.lastPruneMs = now;
    }
    let b = this.buckets.get(key);
    if (!b) {
      b = new TokenBucket(this.ratePerSec, this.burst, now);
      this.buckets.set(key, b);
    }
    return b.take(1, now);
  }
}
