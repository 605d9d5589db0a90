import { KeyedRateLimiter } from '../../runtime/limits/token-bucket.ts';
import { ChatCodes, reject } from '../errors.ts';

export interface SendAllowanceLimits {
  /** Sustained sends per second per user. */
  readonly ratePerSec: number;
  /** Sends a user may make at once before `ratePerSec` applies. */
  readonly burst: number;
  /** Sends in flight on this node, all users and both paths together. */
  readonly maxInflight: number;
}

/**
 * Whether a send may start: the one check both send paths (WebSocket and HTTP) go through, so a
 * user cannot get twice the allowance by using both, or N times by opening N devices.
 *
 * - Per user: a token bucket (`burst`, then `ratePerSec`) shared by every session of the user on
 *   this node and by its HTTP sends; past it, RATE_LIMITED (HTTP 429). Buckets live in a keyed
 *   limiter that forgets those that have refilled, so memory follows the users sending now, not
 *   every user ever seen. The allowance is per node: a user whose devices sit on two nodes gets
 *   one on each (discovery is meant to put a user's devices on one node).
 * - Per node: at most `maxInflight` sends between admission and answer; past it, OVERLOADED
 *   (HTTP 503) at once. Accepting work the node cannot finish in time only turns into timeouts,
 *   retries and more work (a collapse), while a quick refusal keeps the latency of accepted
 *   sends bounded and tells clients to back off.
 *
 * The node bound is checked first and a refusal for it takes nothing from the user's bucket: an
 * overloaded node is not the user's fault, and the retry it asks for must not find the allowance
 * spent.
 */
export class SendAllowance {
  private readonly perUser: KeyedRateLimiter;
  private inflight = 0;

  constructor(private readonly limits: SendAllowanceLimits) {
    this.perUser = new KeyedRateLimiter(limits.ratePerSec, limits.burst);
  }

  /** Sends in flight on this node now. */
  get inflightCount(): number {
    return this.inflight;
  }

  /**
   * Admits one send by `userId` and runs it, holding a slot of the node's bound until it settles.
   * A refusal is thrown before `send` starts (a Rejection with RATE_LIMITED or OVERLOADED), so a
   * refused send writes nothing.
   */
  async admit<T>(userId: string, send: () => Promise<T>): Promise<T> {
    if (this.inflight >= this.limits.maxInflight) throw reject(ChatCodes.OVERLOADED, 'server busy; retry shortly');
    if (!this.perUser.take(userId)) {
      throw reject(ChatCodes.RATE_LIMITED, `at most ${this.limits.burst} messages at once, then ${this.limits.ratePerSec}/s per user`);
    }
    this.inflight++;
    try {
      return await send();
    } finally {
      this.inflight--;
    }
  }
}
