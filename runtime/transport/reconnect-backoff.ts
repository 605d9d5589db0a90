/**
 * Delay before reconnect attempt `attempt` (0 for the first retry): exponential growth from
 * `initialMs`, capped at `maxMs`, with "equal jitter" (half fixed, half random). The fixed half
 * keeps a dead peer from being hammered; the random half keeps every node of a cluster from
 * reconnecting to a restarted peer in the same millisecond.
 */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 5_000, multiplier: 2 };

/** `random` returns a number in [0, 1); injected so the delay is a pure function in tests. */
export function backoffDelay(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt, 0), 64);
  const ceiling = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** exponent);
  const half = ceiling / 2;
  return Math.round(half + half * random());
}
