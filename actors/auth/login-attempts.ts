import type { ActorSystem } from '../../runtime/actor/index.ts';
import { codeOf } from '../../runtime/errors.ts';
import { FailureThrottle, type Admission, type FailureThrottleLimits } from '../../runtime/limits/failure-throttle.ts';
import { ThrottledLog, type Logger } from '../../runtime/log.ts';
import { loginGuardShard } from './login-guard-actor.ts';
import type { LoginGuardMessage } from './login-guard-messages.ts';

/** Where failed logins are counted, asked before any password is checked. */
export interface LoginAttempts {
  /** Admits (and charges) a login attempt for `username`, or refuses it with the time to wait. */
  admit(username: string): Promise<Admission>;
  /** The attempt had the right password: the username's failures are forgotten. */
  succeeded(username: string): void;
  /** The admitted attempt failed before its password was checked (a store fault): not a failure. */
  unchecked(username: string): void;
}

/** How long a login waits for its guard shard before counting on this node's own throttle. */
const GUARD_ASK_MS = 2_000;

/**
 * Counts in the username's guard shard (login-guard-actor.ts), one for the whole cluster. When the
 * shard cannot answer (its node just died, a link is down, its mailbox is full) the attempt is
 * counted here instead, by a throttle of this node's own with the same limits: logins stay
 * available and still throttled (per node, for as long as the shard is away).
 */
export class GuardedLoginAttempts implements LoginAttempts {
  private readonly local: FailureThrottle;
  private readonly fallbackLog: ThrottledLog;

  constructor(
    private readonly system: ActorSystem,
    limits: FailureThrottleLimits,
    log: Logger,
  ) {
    this.local = new FailureThrottle(limits);
    this.fallbackLog = new ThrottledLog(log, 'login guard unavailable; counting failed logins on this node meanwhile', 10_000);
  }

  async admit(username: string): Promise<Admission> {
    try {
      return await this.guard(username).ask<Admission>({ type: 'admit', username }, { timeoutMs: GUARD_ASK_MS });
    } catch (err) {
      this.fallbackLog.warn({ code: codeOf(err), shard: loginGuardShard(username) });
      return this.local.admit(username, Date.now());
    }
  }

  succeeded(username: string): void {
    this.local.succeeded(username);
    this.tell({ type: 'succeeded', username });
  }

  unchecked(username: string): void {
    this.local.refund(username);
    this.tell({ type: 'unchecked', username });
  }

  private tell(m: LoginGuardMessage): void {
    try {
      this.guard(m.username).tell(m);
    } catch {
      // A full mailbox: the charge stays, as if this login had failed; the next success clears it.
    }
  }

  private guard(username: string) {
    return this.system.ref<LoginGuardMessage>('login', loginGuardShard(username));
  }
}
