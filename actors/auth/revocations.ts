import { codeOf } from '../../runtime/errors.ts';
import { ThrottledLog, type Logger } from '../../runtime/log.ts';
import type { KeyValueStore, KeyValueWrite } from '../../runtime/storage/index.ts';
import { Tables } from '../tables.ts';
import { MAX_TOKEN_TTL_S, type TokenClaims } from './tokens.ts';

const DAY_MS = 86_400_000;
/** Width of a feed partition: a poll reads two or three of them. */
const FEED_BUCKET_MS = 10_000;
/** Feed rows are deleted this long after they were written; every node has read them by then. */
const FEED_KEEP_MS = 60_000;
/** Clock difference between nodes the feed window allows for. */
const SKEW_MS = 5_000;
/** A node that could not read the feed for this long reloads the durable set instead. */
const RELOAD_AFTER_MS = FEED_KEEP_MS / 2;
/**
 * How often every node reads the feed: a logout is refused on every node, and its sockets closed,
 * within about this long (plus a store read).
 */
export const REVOCATION_POLL_MS = 500;
/** A refresh racing the logout on a node that has not heard of it yet still falls inside. */
const REFRESH_RACE_MS = 60_000;
const MEMORY_SWEEP_MS = 60_000;
const STORE_SWEEP_MS = 3_600_000;

interface RevokedRow {
  readonly sub: string;
  readonly until_ms: number;
  readonly at_ms: number;
}

interface FeedRow {
  readonly until_ms: number;
}

export interface RevocationsOptions {
  readonly kv: KeyValueStore;
  readonly log: Logger;
  /** Ends a session on this node whose login was revoked (its socket closes with 1008). */
  readonly closeSession: (sessionKey: string) => void;
  readonly pollMs?: number;
}

const dayOf = (ms: number): string => String(Math.floor(ms / DAY_MS));
/**
 * A disabled user is kept in the same set as logged-out logins, under this key: sids are
 * base64url (or `sig:`), never `user:`, so the two cannot collide, and the feed, the durable
 * rows, loading and closing sockets all work for it unchanged.
 */
const userKey = (sub: string): string => `user:${sub}`;
const bucketOf = (ms: number): string => String(Math.floor(ms / FEED_BUCKET_MS));

/**
 * Logged-out login sessions (token `sid`s), known to every node, so a logout holds everywhere:
 * HTTP requests and hellos with any token of that session are refused, and its live sockets on
 * every node are closed.
 *
 * Every node keeps the set in memory (checking a token costs a Map lookup, no store read), loaded
 * at start and kept current by polling the store; a logout writes two rows in one write:
 * - `revoked_session`, partitioned by the day the revocation may be forgotten (`until_ms`): the
 *   durable set. A starting node reads the partitions from today to the longest token lifetime
 *   ahead (MAX_TOKEN_TTL_S, about 32 reads); partitions of past days are deleted by an hourly sweep.
 * - `revocation_feed`, partitioned by 10 s of the logout time: what is new. Each node reads the
 *   partitions around now every REVOCATION_POLL_MS (two or three small reads), so another node
 *   refuses the token within about a second. The writing node deletes its feed row a minute
 *   later; a node that could not poll for half of that reloads the durable set instead.
 *
 * Polling rather than a cluster broadcast: a broadcast needs the member list (chat code has no
 * placement facts), misses nodes that start or rejoin while it is sent (so they need the durable
 * record anyway), and adds a path to keep correct; the feed is read at the same cost by one node
 * or a hundred, and a node that was away only has to read it again. While the store cannot be
 * read a node keeps refusing what it knew and learns new logouts once it can.
 *
 * Not closed: a socket whose token merely expires. It was authenticated by a valid token and
 * stays up (the SDK refreshes and uses the new token on its next connect), so an expiry never
 * cuts a conversation; only a logout does.
 */
export class Revocations {
  /** sid -> until when it must be refused (ms). */
  private readonly revoked = new Map<string, number>();
  /** sid -> keys of this node's sessions opened with a token of it (a Set only when several). */
  private readonly live = new Map<string, string | Set<string>>();
  private readonly failures: ThrottledLog;
  private timer: NodeJS.Timeout | undefined;
  /** Deletions of this node's feed rows, due a minute after each logout. */
  private readonly cleanups = new Set<NodeJS.Timeout>();
  private polling = false;
  private stopped = false;
  /** Start of the last successful read: the next poll reads the feed from there on. */
  private readFromMs = 0;
  private lastMemorySweepMs = Date.now();
  /** The first store sweep runs a minute after start, then hourly. */
  private lastStoreSweepMs = Date.now() - STORE_SWEEP_MS + 60_000;

  constructor(private readonly o: RevocationsOptions) {
    this.failures = new ThrottledLog(o.log, 'revoked sessions not read; refusing what is known', 10_000);
  }

  /** Loads the durable set, then keeps it current; a node serves only after this. */
  async start(): Promise<void> {
    await this.loadAll();
    this.timer = setInterval(() => void this.poll(), this.o.pollMs ?? REVOCATION_POLL_MS);
    this.timer.unref();
  }

  /** Stops polling. Feed rows not yet deleted stay: nobody reads a past bucket again. */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    for (const t of this.cleanups) clearTimeout(t);
    this.cleanups.clear();
  }

  isRevoked(sid: string): boolean {
    return this.revoked.has(sid);
  }

  /** Whether a token with these claims is refused: its login was logged out or its user disabled. */
  refuses(claims: Pick<TokenClaims, 'sid' | 'sub'>): boolean {
    return this.revoked.has(claims.sid) || this.revoked.has(userKey(claims.sub));
  }

  /** Logins known to be revoked (and not yet forgotten). */
  get size(): number {
    return this.revoked.size;
  }

  /**
   * A session on this node runs on a token of `sid` (of user `sub`): close it if that login is
   * revoked or that user disabled.
   */
  track(sid: string, sessionKey: string, sub?: string): void {
    this.add(sid, sessionKey);
    if (sub !== undefined) this.add(userKey(sub), sessionKey);
  }

  untrack(sid: string, sessionKey: string, sub?: string): void {
    this.remove(sid, sessionKey);
    if (sub !== undefined) this.remove(userKey(sub), sessionKey);
  }

  private add(sid: string, sessionKey: string): void {
    const current = this.live.get(sid);
    if (current === undefined) this.live.set(sid, sessionKey);
    else if (typeof current === 'string') this.live.set(sid, new Set([current, sessionKey]));
    else current.add(sessionKey);
  }

  private remove(sid: string, sessionKey: string): void {
    const current = this.live.get(sid);
    if (current === sessionKey) this.live.delete(sid);
    else if (typeof current === 'object') {
      current.delete(sessionKey);
      if (current.size === 0) this.live.delete(sid);
    }
  }

  /**
   * Logs out the login session of `claims`: durable before it resolves, refused on this node at
   * once and on the others within a poll. `ttlS` is the lifetime refreshes give: a token of this
   * login refreshed elsewhere just before that node heard of the logout lives at most that long.
   */
  async revoke(claims: TokenClaims, ttlS: number): Promise<void> {
    const atMs = Date.now();
    await this.record(claims.sid, claims.sub, atMs, Math.max(claims.exp * 1000, atMs + ttlS * 1000) + REFRESH_RACE_MS);
  }

  /**
   * Disables every token of `userId`, on every node, as a logout does for one login: durable
   * before it resolves, refused here at once and elsewhere within a poll, sockets closed. Kept
   * until every token signed before now has expired (MAX_TOKEN_TTL_S, plus a refresh racing it);
   * the caller keeps new tokens from being issued (a disabled account cannot log in).
   */
  async revokeUser(userId: string): Promise<void> {
    const atMs = Date.now();
    await this.record(userKey(userId), userId, atMs, atMs + MAX_TOKEN_TTL_S * 1000 + REFRESH_RACE_MS);
  }

  private async record(key: string, sub: string, atMs: number, untilMs: number): Promise<void> {
    const row: RevokedRow = { sub, until_ms: untilMs, at_ms: atMs };
    const feed = { table: Tables.revocationFeed, partition: bucketOf(atMs), key };
    await this.o.kv.write([
      { op: 'put', table: Tables.revokedSession, partition: dayOf(untilMs), key, value: JSON.stringify(row) },
      { op: 'put', ...feed, value: JSON.stringify({ until_ms: untilMs } satisfies FeedRow) },
    ]);
    this.apply(key, untilMs);
    const cleanup = setTimeout(() => {
      this.cleanups.delete(cleanup);
      Promise.resolve()
        .then(() => this.o.kv.write([{ op: 'delete', ...feed }]))
        .catch((err: unknown) => this.o.log.debug({ code: codeOf(err) }, 'revocation feed row not deleted'));
    }, FEED_KEEP_MS);
    cleanup.unref();
    this.cleanups.add(cleanup);
  }

  private apply(sid: string, untilMs: number): void {
    if (untilMs <= Date.now()) return;
    const known = this.revoked.get(sid);
    if (known !== undefined && known >= untilMs) return;
    this.revoked.set(sid, untilMs);
    const sessions = this.live.get(sid);
    if (sessions === undefined) return;
    this.live.delete(sid);
    if (typeof sessions === 'string') this.o.closeSession(sessions);
    else for (const key of sessions) this.o.closeSession(key);
  }

  private async loadAll(): Promise<void> {
    const startedMs = Date.now();
    const first = Math.floor(startedMs / DAY_MS);
    const last = Math.floor((startedMs + MAX_TOKEN_TTL_S * 1000 + REFRESH_RACE_MS) / DAY_MS);
    const days: string[] = [];
    for (let d = first; d <= last; d++) days.push(String(d));
    const pages = await Promise.all(days.map((d) => this.o.kv.list(Tables.revokedSession, d)));
    for (const page of pages) for (const r of page) this.apply(r.key, (JSON.parse(r.value) as RevokedRow).until_ms);
    // Logouts written while we read are in the feed: the next poll reads it from before we began.
    this.readFromMs = startedMs;
  }

  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return;
    this.polling = true;
    const startedMs = Date.now();
    try {
      if (startedMs - this.readFromMs > RELOAD_AFTER_MS) {
        await this.loadAll(); // feed rows from the gap may be deleted already
      } else {
        const first = Math.floor((this.readFromMs - SKEW_MS) / FEED_BUCKET_MS);
        const last = Math.floor((startedMs + SKEW_MS) / FEED_BUCKET_MS);
        const buckets: string[] = [];
        for (let b = first; b <= last; b++) buckets.push(String(b));
        const pages = await Promise.all(buckets.map((b) => this.o.kv.list(Tables.revocationFeed, b)));
        for (const page of pages) for (const r of page) if (!this.revoked.has(r.key)) this.apply(r.key, (JSON.parse(r.value) as FeedRow).until_ms);
        this.readFromMs = startedMs;
      }
      this.sweepMemory(startedMs);
      if (startedMs - this.lastStoreSweepMs > STORE_SWEEP_MS) {
        this.lastStoreSweepMs = startedMs;
        await this.sweepStore(startedMs);
      }
    } catch (err) {
      this.failures.warn({ code: codeOf(err) });
    } finally {
      this.polling = false;
    }
  }

  /** Forgets logins whose every token has expired: refusing them changes nothing any more. */
  private sweepMemory(nowMs: number): void {
    if (nowMs - this.lastMemorySweepMs < MEMORY_SWEEP_MS) return;
    this.lastMemorySweepMs = nowMs;
    for (const [sid, untilMs] of this.revoked) if (untilMs <= nowMs) this.revoked.delete(sid);
  }

  /**
   * Deletes the durable rows of the last two days' partitions (all of them past `until_ms`). Every
   * node does it; after the first, the partitions are empty and the reads cheap.
   */
  private async sweepStore(nowMs: number): Promise<void> {
    const today = Math.floor(nowMs / DAY_MS);
    for (const d of [today - 2, today - 1]) {
      const rows = await this.o.kv.list(Tables.revokedSession, String(d));
      const deletes: KeyValueWrite[] = rows.map((r) => ({ op: 'delete', table: Tables.revokedSession, partition: String(d), key: r.key }));
      for (let i = 0; i < deletes.length; i += 500) await this.o.kv.write(deletes.slice(i, i + 500));
    }
  }
}
