import type { Actor, ActorContext, ActorKind } from '../../runtime/actor/index.ts';
import { FailureThrottle, type Admission, type FailureRecord, type FailureThrottleLimits } from '../../runtime/limits/failure-throttle.ts';
import type { KeyValueStore } from '../../runtime/storage/index.ts';
import { Tables } from '../tables.ts';
import type { LoginGuardMessage } from './login-guard-messages.ts';

/**
 * Usernames are spread over this many guard actors. Fixed (it names the actors and their saved
 * rows), and small: one actor per username would let a flood of made-up names make as many
 * actors, each kept for the window; 64 shards keep at most 64 x capacity records in all.
 */
export const LOGIN_GUARD_SHARDS = 64;

/** Records one shard holds at most (see FailureThrottle's eviction). */
export const LOGIN_GUARD_CAPACITY = 1_024;

/** The first block after the limit; each further failure doubles it, up to the window. */
export const LOGIN_FIRST_BLOCK_MS = 1_000;

/** The shard (the guard actor's key) counting a username's failed logins. */
export function loginGuardShard(username: string): string {
  // FNV-1a: cheap, and spread is all that matters here (a shard is not a secret).
  let h = 0x811c9dc5;
  for (let i = 0; i < username.length; i++) h = Math.imul(h ^ username.charCodeAt(i), 0x01000193);
  return String((h >>> 0) % LOGIN_GUARD_SHARDS);
}

/**
 * Failed logins of the usernames of one shard, for the whole cluster: the actor is placed like
 * any other, so every node asks the same one, and its mailbox serialises the check-and-charge
 * (two nodes cannot both admit the 20th attempt). The counts live in memory; they are saved to
 * the store when the shard moves (hand-off, shutdown) and loaded by its next activation, and
 * lost only with a node that dies holding them (those usernames start counting afresh).
 */
class LoginGuardActor implements Actor<LoginGuardMessage> {
  private readonly throttle: FailureThrottle;
  /** Whether the store may hold a saved row of ours, so an empty shard deletes it (once). */
  private rowSaved = false;

  constructor(
    private readonly ctx: ActorContext<LoginGuardMessage>,
    private readonly kv: KeyValueStore,
    limits: FailureThrottleLimits,
  ) {
    this.throttle = new FailureThrottle(limits);
  }

  async onActivate(): Promise<void> {
    const raw = await this.kv.get(Tables.loginFailures, this.ctx.address.key, '');
    if (raw === undefined) return;
    this.rowSaved = true;
    this.throttle.restore(JSON.parse(raw) as [string, FailureRecord][], Date.now());
  }

  receive(m: LoginGuardMessage): Admission | undefined {
    if (m.type === 'admit') return this.throttle.admit(m.username, Date.now());
    if (m.type === 'succeeded') this.throttle.succeeded(m.username);
    else this.throttle.refund(m.username);
    return undefined;
  }

  /** Idle only once every username has been quiet for the window: passivating would forget them. */
  canPassivate(): boolean {
    return this.throttle.sweep(Date.now());
  }

  async onDeactivate(): Promise<void> {
    const saved = this.throttle.snapshot(Date.now());
    const key = { table: Tables.loginFailures, partition: this.ctx.address.key, key: '' };
    if (saved.length > 0) await this.kv.write([{ op: 'put', ...key, value: JSON.stringify(saved) }]);
    else if (this.rowSaved) await this.kv.write([{ op: 'delete', ...key }]);
  }
}

export function loginGuardKind(kv: KeyValueStore, limits: FailureThrottleLimits): ActorKind<LoginGuardMessage> {
  return {
    name: 'login',
    idleMs: 60_000,
    // A flood for one shard past this gets OVERLOADED, and the asking node its own count (login-attempts.ts).
    mailboxCapacity: 4_096,
    create: (ctx) => new LoginGuardActor(ctx, kv, limits),
  };
}
