import { Range, type Etcd3, type IDuplexStream, type IEvent, type IWatchRequest, type IWatchResponse } from 'etcd3';
import { silentLogger, type Logger } from '../log.ts';
import { LeaseClock } from './lease-clock.ts';
import { MemberView, decodeMember, encodeMember, validateMember } from './member-view.ts';
import type { Member, MembershipProvider } from './membership.ts';
import { MembershipError } from './membership-error.ts';
import { Throttle } from './throttle.ts';

export interface EtcdMembershipOptions {
  /** Preferably from `createEtcdClient`; the membership never closes it. */
  readonly client: Etcd3;
  /** Cluster prefix, e.g. `/parley/prod`; members live at `<prefix>/members/<nodeId>`. */
  readonly prefix: string;
  /** Lease TTL. Default 5 s. */
  readonly ttlSeconds?: number;
  /** Fraction of the TTL after the last renewal during which we call ourselves healthy. Default 0.6. */
  readonly healthMargin?: number;
  /** Time between renewals while they succeed. Default TTL / 5. */
  readonly keepaliveIntervalMs?: number;
  /** Minimum time between two load publications. Default 1 s. */
  readonly loadIntervalMs?: number;
  /**
   * Full re-read of the member set on this period, as a safety net under the watch: a watch
   * on a half-dead connection can go silent without erroring. Default 5 s.
   */
  readonly resyncIntervalMs?: number;
  /**
   * Deadline for each unary etcd call made here, whatever the client's defaults, so no loop can
   * hang on a connection that died without closing. Default 3 s.
   */
  readonly callTimeoutMs?: number;
  readonly logger?: Logger;
  /**
   * Kept under the member's lease with the member record: attached to every lease before the
   * record is written under it, so the record never exists without them.
   */
  readonly leaseBound?: readonly LeaseBound[];
}

/** Something a member keeps in etcd under its own lease (e.g. an `EtcdSlotClaim`). */
export interface LeaseBound {
  /**
   * Puts (or moves) its keys under `leaseId`. Called with each new lease, at join and whenever
   * the lease had to be replaced, before the member record goes under it; a throw fails that
   * registration (join() fails, a re-registration is retried).
   */
  attach(leaseId: string): Promise<void>;
}

type State = 'new' | 'joining' | 'joined' | 'left';

/** Retry cadence for a failed renewal: quick, since every miss eats into the health margin. */
const RENEW_RETRY_MS = 250;
const PRECHECK_RETRY_MS = 250;
const WATCH_RETRY_MAX_MS = 1_000;

/** NODE_ID_TAKEN, naming what the holder's record says about it. */
function idTaken(nodeId: string, record: string, more: string): MembershipError {
  const m = decodeMember(record);
  const who = m === undefined ? '' : ` (gRPC ${m.grpcAddress}, ${m.wsUrl}, started ${new Date(m.startedAtMs).toISOString()})`;
  return new MembershipError('NODE_ID_TAKEN', `node id ${nodeId} is held by a live member${who}${more}`);
}

/** A sleep that `wake()` cuts short, so loops react at once to leave() or to a needed re-registration. */
class Sleeper {
  private pending: { timer: NodeJS.Timeout; resolve: () => void } | undefined;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        resolve();
      }, ms);
      this.pending = { timer, resolve };
    });
  }

  wake(): void {
    const p = this.pending;
    if (p === undefined) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    p.resolve();
  }
}

/**
 * Closes an etcd3 stream without etcd3 treating it as a connection fault: its error handler
 * resets every gRPC client of the host on a "recoverable" error (cancellation counts) unless the
 * stream is no longer writable, so we half-close first.
 */
function closeQuietly(stream: { end(): void; cancel(): void }): void {
  try {
    stream.end();
  } catch {
    // already ended
  }
  stream.cancel();
}

/**
 * Membership in etcd (server 3.4, client etcd3 1.1.2): our record at `<prefix>/members/<nodeId>`
 * under a lease, a watch on the prefix for everyone else.
 *
 * etcd3's own Lease and Watcher helpers are not used, because of known problems in them:
 * the Lease reports "lost" only 2 x TTL after the last renewal and can sit on a silently dead
 * keepalive stream (microsoft/etcd3#110, #13), the Watcher reconnects with up to 30 s of
 * backoff, throws inside stream handlers on unexpected responses and does not resume after a
 * server-side cancellation such as compaction (#72, #78, #114). Instead:
 * - renewal is one short keepalive stream per attempt with a deadline, so a dead connection
 *   costs one failed attempt, never a stuck stream;
 * - health is judged by our own clock from the send time of the last successful renewal;
 * - after any failed renewal, the next success re-puts our record and restarts the watch,
 *   which is what makes a node re-register after an etcd restart;
 * - a lease etcd no longer knows (TTL 0) is replaced by a new one at once;
 * - the watch is list-then-watch from the listed revision, redone after any stream error or
 *   cancellation, plus a periodic re-read, with revisions keeping events and snapshots in order.
 */
export class EtcdMembership implements MembershipProvider {
  private readonly client: Etcd3;
  private readonly logger: Logger;
  private readonly membersPrefix: string;
  private readonly ttlSeconds: number;
  private readonly keepaliveIntervalMs: number;
  private readonly resyncIntervalMs: number;
  private readonly callTimeoutMs: number;
  private readonly clock: LeaseClock;
  private readonly view = new MemberView();
  private readonly loadThrottle: Throttle;
  private readonly changeListeners = new Set<(members: readonly Member[]) => void>();
  private readonly unhealthyListeners = new Set<() => void>();
  private readonly renewSleeper = new Sleeper();
  private readonly watchSleeper = new Sleeper();
  private readonly leaseBound: readonly LeaseBound[];

  private state: State = 'new';
  private self: Member | undefined;
  private leaseId: string | undefined;
  /** Set when our record may be missing (a failed renewal, a delete we saw); cleared by a put. */
  private needsRegister = false;
  private reportedHealthy = false;
  private healthTimer: NodeJS.Timeout | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private watchStream: IDuplexStream<IWatchRequest, IWatchResponse> | undefined;
  private loops: Promise<void>[] = [];
  /** A NODE_ID_TAKEN was logged; the renew loop retries every 250 ms, so once is enough until it clears. */
  private idTakenLogged = false;

  constructor(options: EtcdMembershipOptions) {
    this.client = options.client;
    this.logger = options.logger ?? silentLogger();
    this.membersPrefix = `${options.prefix.replace(/\/+$/, '')}/members/`;
    this.ttlSeconds = options.ttlSeconds ?? 5;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 2) {
      throw new RangeError(`ttlSeconds must be an integer >= 2, got ${this.ttlSeconds}`);
    }
    this.keepaliveIntervalMs = options.keepaliveIntervalMs ?? (this.ttlSeconds * 1000) / 5;
    this.resyncIntervalMs = options.resyncIntervalMs ?? 5_000;
    this.callTimeoutMs = options.callTimeoutMs ?? 3_000;
    this.clock = new LeaseClock(options.healthMargin ?? 0.6);
    this.loadThrottle = new Throttle(options.loadIntervalMs ?? 1_000, () => this.publishLoad());
    this.leaseBound = options.leaseBound ?? [];
  }

  /**
   * Before joining (and before opening any port): fails with NODE_ID_TAKEN while another live
   * member holds `nodeId`. A record left by a previous run of this node (killed, its lease not
   * lapsed yet) looks the same as a live one, so it waits up to `waitMs` (more than the lease TTL)
   * for the record to go: a dead holder's lease lapses by then, a live one keeps renewing.
   */
  async precheck(nodeId: string, waitMs: number): Promise<void> {
    const key = this.membersPrefix + nodeId;
    const deadline = Date.now() + waitMs;
    let waiting = false;
    for (;;) {
      const held = await this.client.get(key).options(this.deadline()).string();
      if (held === null) return;
      if (Date.now() >= deadline) throw idTaken(nodeId, held, ` (still, after waiting ${waitMs} ms for a previous run's lease to lapse: is another process running as ${nodeId}?)`);
      if (!waiting) this.logger.info({ nodeId }, 'node id still registered, maybe by a previous run of this node; waiting for its lease to lapse');
      waiting = true;
      await new Promise((r) => setTimeout(r, PRECHECK_RETRY_MS));
    }
  }

  async join(self: Member): Promise<void> {
    if (this.state !== 'new') throw new MembershipError('ALREADY_JOINED', `join() called in state ${this.state}`);
    validateMember(self);
    this.self = { ...self };
    this.state = 'joining';
    try {
      await this.grantAndRegister();
      await this.resync();
    } catch (err) {
      this.state = 'new';
      const id = this.leaseId;
      this.leaseId = undefined;
      this.clock.markLost();
      if (id !== undefined) await this.revoke(id);
      if (err instanceof MembershipError && err.code === 'NODE_ID_TAKEN') throw err;
      throw new MembershipError('JOIN_FAILED', `could not register ${self.nodeId} in etcd`, { cause: err });
    }
    // Cast: leave() may run while join() awaits and moves the state on.
    if ((this.state as State) !== 'joining') return;
    this.state = 'joined';
    this.reportedHealthy = true;
    this.scheduleHealthCheck();
    this.resyncTimer = setInterval(() => void this.resync().catch((err) => this.logger.debug({ err }, 'member re-read failed')), this.resyncIntervalMs);
    this.loops = [this.renewLoop(), this.watchLoop()];
    this.logger.info({ nodeId: self.nodeId, leaseId: this.leaseId }, 'joined cluster');
  }

  setLoad(load: number): void {
    if (!Number.isFinite(load)) throw new MembershipError('INVALID_MEMBER', `load must be finite, got ${load}`);
    if (this.self === undefined) return;
    this.self.load = load;
    if (this.state === 'joined') this.loadThrottle.request();
  }

  members(): readonly Member[] {
    return this.view.list();
  }

  onChange(listener: (members: readonly Member[]) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  selfHealthy(): boolean {
    return this.state === 'joined' && this.clock.isHealthy(performance.now());
  }

  onSelfUnhealthy(listener: () => void): () => void {
    this.unhealthyListeners.add(listener);
    return () => this.unhealthyListeners.delete(listener);
  }

  async leave(): Promise<void> {
    if (this.state === 'left') return;
    const wasActive = this.state === 'joined' || this.state === 'joining';
    this.state = 'left';
    this.loadThrottle.cancel();
    clearTimeout(this.healthTimer);
    clearInterval(this.resyncTimer);
    this.renewSleeper.wake();
    const id = this.leaseId;
    this.leaseId = undefined;
    this.clock.markLost();
    // Revoke before we stop watching: peers drop us now instead of when the TTL runs out.
    if (wasActive && id !== undefined) await this.revoke(id);
    const stream = this.watchStream;
    this.watchStream = undefined;
    if (stream !== undefined) closeQuietly(stream);
    this.watchSleeper.wake();
    await Promise.all(this.loops);
    this.loops = [];
    this.view.clear();
    this.changeListeners.clear();
    this.unhealthyListeners.clear();
    this.logger.info({ nodeId: this.self?.nodeId }, 'left cluster');
  }

  private deadline(): { deadline: number } {
    return { deadline: Date.now() + this.callTimeoutMs };
  }

  private get selfKey(): string {
    return this.membersPrefix + this.self!.nodeId;
  }

  private async grantAndRegister(): Promise<void> {
    const sentAt = performance.now();
    const grant = await this.client.leaseClient.leaseGrant({ TTL: this.ttlSeconds }, this.deadline());
    if (grant.error) throw new Error(`lease grant refused: ${grant.error}`);
    try {
      for (const bound of this.leaseBound) await bound.attach(grant.ID);
      await this.putRecord(grant.ID);
    } catch (err) {
      await this.revoke(grant.ID);
      throw err;
    }
    if (this.state === 'left') {
      await this.revoke(grant.ID);
      return;
    }
    this.leaseId = grant.ID;
    this.needsRegister = false;
    this.clock.renewed(sentAt, Number(grant.TTL) * 1000);
  }

  private async putSelf(): Promise<void> {
    const id = this.leaseId;
    if (id === undefined) throw new Error('no lease to register under');
    await this.putRecord(id);
  }

  /**
   * Writes our record under `leaseId` if it is ours already (under that lease) or nobody's, each
   * case one transaction, so of two processes with one node id only one ever registers. Throws
   * NODE_ID_TAKEN otherwise: at join that fails the start; later (our lease lapsed and someone
   * took the id meanwhile) the renew loop keeps failing, so we stay unhealthy and serve nothing.
   */
  private async putRecord(leaseId: string): Promise<void> {
    const value = encodeMember(this.self!);
    const put = () => this.client.put(this.selfKey).value(value).lease(leaseId);
    const mine = await this.client.if(this.selfKey, 'Lease', '==', leaseId).then(put()).options(this.deadline()).commit();
    if (mine.succeeded || (await this.client.if(this.selfKey, 'Create', '==', 0).then(put()).options(this.deadline()).commit()).succeeded) {
      this.idTakenLogged = false;
      return;
    }
    const held = await this.client.get(this.selfKey).options(this.deadline()).string();
    // Gone between the two transactions: the next renewal registers.
    if (held === null) throw new Error(`member record of ${this.self!.nodeId} changed while registering`);
    const err = idTaken(this.self!.nodeId, held, '');
    if (!this.idTakenLogged) this.logger.error({ err }, 'cannot register: another live member holds this node id');
    this.idTakenLogged = true;
    throw err;
  }

  private publishLoad(): void {
    this.putSelf().catch((err) => {
      // The renew loop repairs the record; the newest load goes with it.
      this.needsRegister = true;
      this.logger.debug({ err }, 'load publication failed');
    });
  }

  private async revoke(id: string): Promise<void> {
    try {
      await this.client.leaseClient.leaseRevoke({ ID: id }, this.deadline());
    } catch (err) {
      this.logger.warn({ err, leaseId: id }, 'lease revoke failed; the record expires with its TTL');
    }
  }

  /** One keepalive on a stream of its own; resolves with the TTL etcd reports (0: unknown lease). */
  private async keepAliveOnce(id: string): Promise<number> {
    const timeoutMs = Math.max(500, Math.min(2_000, this.keepaliveIntervalMs));
    const stream = await this.client.leaseClient.leaseKeepAlive({ deadline: Date.now() + timeoutMs });
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        closeQuietly(stream);
        fn();
      };
      stream.on('data', (res) => settle(() => resolve(Number(res.TTL))));
      stream.on('error', (err) => settle(() => reject(err)));
      stream.on('end', () => settle(() => reject(new Error('keepalive stream ended without an answer'))));
      stream.write({ ID: id });
    });
  }

  private async renewLoop(): Promise<void> {
    while (this.state === 'joined') {
      let delay = this.keepaliveIntervalMs;
      try {
        await this.renew();
      } catch (err) {
        this.needsRegister = true;
        delay = RENEW_RETRY_MS;
        this.logger.debug({ err }, 'lease renewal failed');
      }
      this.checkHealth();
      if (this.state !== 'joined') break;
      await this.renewSleeper.sleep(this.needsRegister && delay !== RENEW_RETRY_MS ? 0 : delay);
    }
  }

  private async renew(): Promise<void> {
    const id = this.leaseId;
    if (id === undefined) {
      await this.grantAndRegister();
      this.restartWatch();
      return;
    }
    const sentAt = performance.now();
    const ttl = await this.keepAliveOnce(id);
    if (this.state !== 'joined') return;
    if (ttl <= 0) {
      // etcd no longer has our lease, so peers have already seen us go: say so, then come back.
      this.logger.warn({ leaseId: id }, 'lease expired in etcd; registering under a new lease');
      this.clock.markLost();
      this.leaseId = undefined;
      this.checkHealth();
      await this.grantAndRegister();
      this.restartWatch();
      return;
    }
    this.clock.renewed(sentAt, ttl * 1000);
    if (this.needsRegister) {
      // The last renewal failed (etcd restarted, or a partition healed): make sure our record
      // is there and that the watch is not a survivor on a dead connection.
      await this.putSelf();
      this.needsRegister = false;
      this.restartWatch();
      this.logger.info({ nodeId: this.self!.nodeId }, 're-registered after a failed renewal');
    }
  }

  private checkHealth(): void {
    const healthy = this.selfHealthy();
    if (this.reportedHealthy && !healthy) {
      this.reportedHealthy = false;
      if (this.state === 'joined') {
        this.logger.warn({ nodeId: this.self?.nodeId }, 'own registration may have lapsed; unhealthy');
        for (const listener of [...this.unhealthyListeners]) this.safely(() => listener(), 'unhealthy listener threw');
      }
    } else if (!this.reportedHealthy && healthy) {
      this.reportedHealthy = true;
      this.logger.info({ nodeId: this.self?.nodeId }, 'own registration healthy again');
    }
    this.scheduleHealthCheck();
  }

  /** Wakes exactly when the health margin runs out, so listeners hear of it without polling. */
  private scheduleHealthCheck(): void {
    clearTimeout(this.healthTimer);
    this.healthTimer = undefined;
    if (this.state !== 'joined') return;
    const wait = this.clock.healthyUntil() - performance.now();
    // Already past it (or lost): nothing to wait for until the next renewal re-arms the check.
    if (!(wait > 0)) return;
    this.healthTimer = setTimeout(() => this.checkHealth(), wait + 1);
  }

  private async watchLoop(): Promise<void> {
    let failures = 0;
    while (this.state === 'joined') {
      let healthy = false;
      try {
        const revision = await this.resync();
        healthy = await this.watchFrom(revision + 1);
      } catch (err) {
        this.logger.debug({ err }, 'member watch failed');
      }
      if (this.state !== 'joined') break;
      failures = healthy ? 0 : failures + 1;
      await this.watchSleeper.sleep(Math.min(WATCH_RETRY_MAX_MS, 50 * 2 ** failures));
    }
  }

  /** Ends the current watch; the watch loop re-lists and watches again right away. */
  private restartWatch(): void {
    const stream = this.watchStream;
    this.watchStream = undefined;
    if (stream !== undefined) closeQuietly(stream);
    this.watchSleeper.wake();
  }

  /**
   * Watches from `startRevision` until the stream ends for any reason. Resolves true when the
   * watch had been established (so the retry backoff can start over), false otherwise.
   */
  private async watchFrom(startRevision: number): Promise<boolean> {
    const stream = await this.client.watchClient.watch();
    if (this.state !== 'joined') {
      closeQuietly(stream);
      return false;
    }
    this.watchStream = stream;
    const range = Range.prefix(this.membersPrefix);
    return new Promise<boolean>((resolve) => {
      let created = false;
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        // Still current means nobody closed it on purpose: the connection or etcd went away.
        const broke = this.watchStream === stream;
        if (broke) this.watchStream = undefined;
        closeQuietly(stream);
        if (broke && this.state === 'joined') this.suspectRegistration();
        resolve(created);
      };
      stream.on('data', (res) => {
        if (res.canceled) {
          // Compaction past our revision, or the server dropping the watch: list again.
          this.logger.info({ reason: res.cancel_reason, compactRevision: res.compact_revision }, 'member watch cancelled by etcd');
          finish();
          return;
        }
        if (res.created) created = true;
        if (res.events !== undefined && res.events.length > 0) this.applyEvents(res.events);
      });
      stream.on('error', (err) => {
        this.logger.debug({ err }, 'member watch stream failed');
        finish();
      });
      stream.on('end', finish);
      stream.write({
        create_request: { key: range.start, range_end: range.end, start_revision: startRevision, progress_notify: true },
      });
    });
  }

  private applyEvents(events: readonly IEvent[]): void {
    const changed = this.view.applyEvents(
      events.map((e) => ({
        type: e.type === 'Delete' ? ('delete' as const) : ('put' as const),
        nodeId: e.kv.key.toString('utf8').slice(this.membersPrefix.length),
        value: e.kv.value?.toString('utf8') ?? '',
        revision: Number(e.kv.mod_revision),
      })),
    );
    if (changed) this.afterViewChange();
  }

  /** Reads the whole member set; returns the revision it was read at. */
  private async resync(): Promise<number> {
    const res = await this.client.getAll().prefix(this.membersPrefix).options(this.deadline()).exec();
    const revision = Number(res.header.revision);
    const snapshot = res.kvs.map((kv) => ({
      nodeId: kv.key.toString('utf8').slice(this.membersPrefix.length),
      value: kv.value.toString('utf8'),
    }));
    if (this.view.replace(snapshot, revision)) this.afterViewChange();
    return revision;
  }

  /**
   * Our record may be gone or stale (etcd restarted, possibly without its data): have the
   * renew loop re-put it, and the lease re-created if etcd no longer knows it, right away.
   */
  private suspectRegistration(): void {
    if (this.needsRegister) return;
    this.needsRegister = true;
    this.renewSleeper.wake();
  }

  private afterViewChange(): void {
    // Our record vanished while we think we are in (deleted by hand, or the lease ran out).
    if (this.state === 'joined' && !this.view.has(this.self!.nodeId)) this.suspectRegistration();
    if (this.state !== 'joined' && this.state !== 'joining') return;
    const members = this.view.list();
    for (const listener of [...this.changeListeners]) this.safely(() => listener(members), 'membership listener threw');
  }

  private safely(fn: () => void, what: string): void {
    try {
      fn();
    } catch (err) {
      this.logger.error({ err }, what);
    }
  }
}
