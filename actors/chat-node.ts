import { ActorSystem, type ActorRef } from '../runtime/actor/index.ts';
import { codeOf } from '../runtime/errors.ts';
import { Gateway, type Connection, type ConnectionHandler, type CorsPolicy, type HttpRouter } from '../runtime/gateway/index.ts';
import type { Logger } from '../runtime/log.ts';
import type { Store } from '../runtime/storage/index.ts';
import { decodeClientFrame, encodeServerFrame, FrameDecodeError } from '../proto/client-codec.ts';
import { httpApi, type Discovery, type ServerInfo } from './api/http-api.ts';
import { addWebPage } from './api/web-page.ts';
import { adminApi, type ClusterControl } from './api/admin-api.ts';
import type { AdminTokens } from './auth/admin-token.ts';
import { Accounts } from './auth/accounts.ts';
import { GuardedLoginAttempts } from './auth/login-attempts.ts';
import { LOGIN_FIRST_BLOCK_MS, LOGIN_GUARD_CAPACITY, loginGuardKind } from './auth/login-guard-actor.ts';
import { defaultHashConcurrency, PasswordHasher, type PasswordCost } from './auth/password.ts';
import { ScryptThreads } from './auth/scrypt-threads.ts';
import { WorkGate } from '../runtime/limits/work-gate.ts';
import { Revocations } from './auth/revocations.ts';
import type { TokenSigner } from './auth/tokens.ts';
import { channelKind } from './channel/channel-actor.ts';
import { sessions, users, type ChatDeps, type ChatTimings } from './chat-deps.ts';
import { EventLoopDelay } from '../runtime/health/event-loop-delay.ts';
import { markRunning, markStopped, recordLoss } from './node-losses.ts';
import { ChatCodes, httpStatusFor } from './errors.ts';
import type { Snowflake } from './ids/snowflake.ts';
import { SendAllowance } from './limits/send-allowance.ts';
import { CloseCodes, createSession, sessionKind, type SessionSettings } from './session/session-actor.ts';
import type { SessionMessage } from './session/session-messages.ts';
import { InProcessPresenceDirectory, type PresenceDirectory } from '../runtime/presence/index.ts';
import { userKind } from './user/user-actor.ts';
import { NoDeviceNodes, type DeviceNodes } from './user/device-nodes.ts';
import type { PushProvider } from '../runtime/push/index.ts';
import { WebPushProvider } from '../runtime/push/web-push-provider.ts';
import { Notifier } from './push/notifier.ts';
import { listSubscriptions, removeSubscription } from './push/push-subscriptions.ts';
import { loadVapidKeys } from './push/vapid-keys.ts';
import type { PushSettings } from './user/push-decider.ts';
import { KvJobQueue, type JobQueue, type JobWorker } from '../runtime/queue/index.ts';
import { PUSH_QUEUE } from './push/push-jobs.ts';
import { NodeMetrics, registerRuntimeMetrics } from '../runtime/metrics/index.ts';
import { ChatMetrics } from './chat-metrics.ts';
import { MAX_SEND_FRAME_BYTES, Tables } from './tables.ts';

/**
 * Password checks queued on a node: refused (OVERLOADED, retry) past what the node would get
 * through in 5 s, and past 1,000 whatever they cost.
 */
const HASH_MAX_WAIT_MS = 5_000;
const HASH_MAX_WAITING = 1_000;

/** How long /readyz waits for its store read before calling the store unavailable. */
const READY_STORE_TIMEOUT_MS = 1_000;

/** Why a node is not ready, or undefined when it is (GET /readyz). */
export type Readiness = () => Promise<string | undefined>;

/** Push for offline users (actors/push, README "Push"). */
export interface ChatPushOptions extends Omit<PushSettings, 'queue'> {
  /**
   * Where push jobs are queued and claimed: the composition root passes Redis's with --redis;
   * by default the store's tables (runtime/queue/kv-job-queue.ts). The node does not close it.
   */
  readonly queue?: JobQueue & JobWorker;
  /** Providers besides Web Push, which is always there (the webhook, when set). */
  readonly providers: readonly PushProvider[];
  readonly maxAttempts: number;
  readonly retryBaseMs: number;
  /** Accept `http:` Web Push endpoints on loopback (--push-allow-insecure). */
  readonly allowInsecure?: boolean;
  /** The VAPID `sub` (--push-vapid-subject). */
  readonly vapidSubject?: string;
}

/** What a node without push settings gets: the defaults of config/settings.ts. */
const DEFAULT_PUSH: ChatPushOptions = { providers: [], coalesceMs: 10_000, includeText: false, maxAttempts: 8, retryBaseMs: 1_000 };

export interface ChatNodeOptions {
  readonly nodeId: string;
  /**
   * Message ids. Its node number (0..1023) must be unique among live nodes; in a cluster it is
   * bound once claimed from the registry and refuses ids until then (bin/node-assembly.ts).
   */
  readonly ids: Snowflake;
  readonly host: string;
  readonly port: number;
  /** The WebSocket URL clients are sent to; derived from host and port when absent. */
  readonly publicUrl?: string;
  /** Browser origins allowed (runtime/gateway/cors.ts); none when absent. */
  readonly cors?: CorsPolicy;
  readonly store: Store;
  readonly signer: TokenSigner;
  readonly passwordCost: PasswordCost;
  readonly log: Logger;
  readonly timings: ChatTimings;
  readonly limits: {
    /** Per user on this node, WebSocket and HTTP sends together. */
    readonly sendRatePerSec: number;
    readonly sendBurst: number;
    readonly authPerMinute: number;
    /** Failed logins of a username answered before its attempts are throttled (cluster-wide). */
    readonly loginFailLimit: number;
    /** Quiet time after which a username's failed logins are forgotten; also the longest block. */
    readonly loginFailWindowMs: number;
    readonly maxFrameBytes: number;
    readonly maxHttpBodyBytes: number;
    /** Sends in flight on this node (both paths) before new ones are refused with OVERLOADED. */
    readonly maxInflightSends: number;
    /** Bytes a session's socket may hold unsent before it pages from the inbox (session-actor.ts). */
    readonly sessionMaxUnsentBytes: number;
  };
  readonly actorIdleMs?: number;
  readonly presence?: PresenceDirectory;
  readonly discovery?: Discovery;
  /** Where users' devices are, for takeover after a node crash (default: no index, for a lone node). */
  readonly deviceNodes?: DeviceNodes;
  readonly push?: ChatPushOptions;
  /** Verifies operator tokens for the admin routes (actors/api/admin-api.ts). */
  readonly adminTokens: AdminTokens;
  /** The release this node runs (package.json), shown by `parleyctl nodes`. */
  readonly version?: string;
  /**
   * The node's metrics registry (GET /metrics); the assembly passes the one its store and
   * transport report to. A fresh one (with process figures) when absent.
   */
  readonly metrics?: NodeMetrics;
  /** Why the node is not registered where it must be (a cluster's membership), or undefined. */
  readonly registration?: () => string | undefined;
}

/**
 * One chat node: actor system, actor kinds, HTTP API and WebSocket endpoint. Everything it needs
 * from the outside (store, secret, presence directory, discovery) comes in through options.
 */
export class ChatNode {
  readonly system: ActorSystem;
  readonly deps: ChatDeps;
  private readonly gateway: Gateway;
  private readonly sessionSettings: SessionSettings;
  private readonly revocations: Revocations;
  private stopping: Promise<void> | undefined;
  private discovery: Discovery | undefined;
  private expirySweep: NodeJS.Timeout | undefined;
  /** Session actors alive now; next to the gateway's connection count, a gap shows a leak. */
  private liveSessions = 0;
  private readonly loopDelay = new EventLoopDelay();
  /** Where this node's password hashing runs (low-priority threads, off libuv's pool). */
  private readonly scryptThreads: ScryptThreads;
  private webPushProvider: WebPushProvider | undefined;
  private readonly notifier: Notifier;
  private cluster: ClusterControl | undefined;
  private draining: Promise<void> | undefined;
  private readonly startedAtMs = Date.now();
  port = 0;
  readonly metrics: NodeMetrics;

  constructor(private readonly o: ChatNodeOptions) {
    this.system = new ActorSystem({ log: o.log });
    this.metrics = o.metrics ?? new NodeMetrics();
    const push = o.push ?? DEFAULT_PUSH;
    const queue = push.queue ?? new KvJobQueue(o.store.kv, { name: PUSH_QUEUE, owner: o.nodeId });
    this.deps = {
      nodeId: o.nodeId,
      system: this.system,
      store: o.store,
      ids: o.ids,
      presence: o.presence ?? new InProcessPresenceDirectory(),
      log: o.log,
      timings: o.timings,
      deviceNodes: o.deviceNodes ?? new NoDeviceNodes(),
      push: { coalesceMs: push.coalesceMs, includeText: push.includeText, queue },
      metrics: new ChatMetrics(this.metrics, () => this.notifier.queueDepth),
    };
    // Web Push is always on (devices register subscriptions through the API); its provider is
    // made at start, once the cluster's VAPID key is loaded.
    const webPush: PushProvider = { name: 'webpush', send: (target, payload) => this.webPush.send(target, payload) };
    this.notifier = new Notifier({
      deps: this.deps,
      providers: [...push.providers, webPush],
      subscriptions: {
        list: (userId) => listSubscriptions(o.store.kv, userId),
        remove: (userId, deviceId, endpoint) => removeSubscription(o.store.kv, userId, deviceId, endpoint),
      },
      queue,
      coalesceMs: push.coalesceMs,
      maxAttempts: push.maxAttempts,
      retryBaseMs: push.retryBaseMs,
      log: o.log,
    });
    const idle = o.actorIdleMs;
    this.system.register({ ...userKind(this.deps), ...(idle ? { idleMs: idle } : {}) });
    this.system.register({ ...channelKind(this.deps), ...(idle ? { idleMs: idle } : {}) });
    this.system.register(sessionKind());
    const loginLimits = { limit: o.limits.loginFailLimit, windowMs: o.limits.loginFailWindowMs, firstBlockMs: LOGIN_FIRST_BLOCK_MS, capacity: LOGIN_GUARD_CAPACITY };
    this.system.register(loginGuardKind(o.store.kv, loginLimits));
    this.revocations = new Revocations({ kv: o.store.kv, log: o.log, closeSession: (key) => this.closeRevoked(key) });
    const sendAllowance = new SendAllowance({ ratePerSec: o.limits.sendRatePerSec, burst: o.limits.sendBurst, maxInflight: o.limits.maxInflightSends });
    this.sessionSettings = {
      signer: o.signer,
      revocations: this.revocations,
      allowance: sendAllowance,
      maxUnsentBytes: o.limits.sessionMaxUnsentBytes,
      catchUpPage: 200,
      sessionEnded: () => this.liveSessions--,
    };
    const discovery: Discovery = { servers: () => (this.discovery ?? self).servers() };
    const self: Discovery = { servers: (): ServerInfo[] => [{ node_id: o.nodeId, ws_url: this.publicUrl }] };
    this.discovery = o.discovery;
    const hashThreads = defaultHashConcurrency();
    this.scryptThreads = new ScryptThreads(hashThreads);
    const passwords = new PasswordHasher(
      o.passwordCost,
      new WorkGate({ concurrency: hashThreads, maxWaitMs: HASH_MAX_WAIT_MS, maxWaiting: HASH_MAX_WAITING, what: 'password checks' }),
      this.deps.metrics.passwordHashes,
      this.scryptThreads.derive,
    );
    const accounts = new Accounts(o.store.kv, passwords, new GuardedLoginAttempts(this.system, loginLimits, o.log), this.deps.metrics.loginsThrottled);
    this.gateway = new Gateway({
      host: o.host,
      port: o.port,
      wsPath: '/v1/ws',
      log: o.log,
      maxPayloadBytes: o.limits.maxFrameBytes,
      maxUnsentBytes: socketMaxUnsentBytes(o.limits.sessionMaxUnsentBytes),
      maxHttpBodyBytes: o.limits.maxHttpBodyBytes,
      idleTimeoutMs: o.timings.presenceTimeoutMs,
      statusForCode: httpStatusFor,
      ...(o.cors ? { cors: o.cors } : {}),
      onConnection: (conn) => this.onConnection(conn),
      // The web chat page shares the API's origin (no CORS) and router; the operator's routes too.
      router: addWebPage(this.withAdmin(accounts, httpApi({
        deps: this.deps,
        accounts,
        signer: o.signer,
        revocations: this.revocations,
        discovery,
        sendAllowance,
        authPerMinute: o.limits.authPerMinute,
        push: { allowInsecure: o.push?.allowInsecure ?? false, publicKey: () => this.webPush.publicKey },
        metrics: this.metrics,
        ready: () => this.notReady(),
        // node_number: null only before a cluster node has claimed one (it does not serve yet).
        health: () => ({
          node_id: o.nodeId,
          node_number: o.ids.node ?? null,
          connections: this.gateway.connectionCount,
          sessions: this.liveSessions,
          store: o.store.describe,
          // The last whole second: its worst delay, and the distribution.
          event_loop_delay_ms: this.loopDelay.stats.max,
          event_loop_delay: this.loopDelay.stats,
        }),
      }))),
    });
    registerRuntimeMetrics(this.metrics, {
      system: this.system,
      connections: () => this.gateway.connectionCount,
      unsentPeak: () => this.gateway.takeUnsentPeak(),
      closedUnread: () => this.gateway.closedUnread,
    });
  }

  /** The operator's routes (actors/api/admin-api.ts) next to the API's. */
  private withAdmin(accounts: Accounts, router: HttpRouter): HttpRouter {
    const o = this.o;
    return adminApi(router, {
      deps: this.deps,
      accounts,
      revocations: this.revocations,
      tokens: o.adminTokens,
      cluster: () => this.cluster,
      facts: () => ({
        node_id: o.nodeId,
        node_number: o.ids.node ?? null,
        version: o.version ?? 'unknown',
        connections: this.gateway.connectionCount,
        sessions: this.liveSessions,
        started_at_ms: this.startedAtMs,
        ws_url: this.publicUrl,
        drained: this.draining !== undefined,
      }),
    });
  }

  /**
   * Why this node should not be sent traffic, or undefined: stopping, not registered (cluster),
   * or its store does not answer a cheap read within READY_STORE_TIMEOUT_MS.
   */
  private async notReady(): Promise<string | undefined> {
    if (this.stopping) return 'stopping';
    const unregistered = this.o.registration?.();
    if (unregistered) return unregistered;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`store did not answer within ${READY_STORE_TIMEOUT_MS} ms`), READY_STORE_TIMEOUT_MS);
    });
    const read = this.o.store.kv.get(Tables.nodeState, this.o.nodeId, 'readyz').then(
      () => undefined,
      (err: unknown) => `store unavailable: ${codeOf(err)}: ${err instanceof Error ? err.message : String(err)}`,
    );
    try {
      return await Promise.race([read, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Gives the admin routes the cluster's side (members, placement, drain); a lone node has none. */
  useCluster(control: ClusterControl): void {
    this.cluster = control;
  }

  get publicUrl(): string {
    return this.o.publicUrl ?? `ws://${this.o.host}:${this.port}/v1/ws`;
  }

  /**
   * Web Push with the cluster's VAPID key (the same on every node: actors/push/vapid-keys.ts).
   * There from start() on, before the node serves.
   */
  get webPush(): WebPushProvider {
    if (!this.webPushProvider) throw new Error('the node has not started: no VAPID key loaded yet');
    return this.webPushProvider;
  }

  get connectionCount(): number {
    return this.gateway.connectionCount;
  }

  /** Replaces how clients are told where to connect (the cluster's member list). */
  useDiscovery(discovery: Discovery): void {
    this.discovery = discovery;
  }

  /**
   * After a membership change: devices on departed nodes are gone (their users may go offline),
   * and every local session re-registers, since its user actor may now live elsewhere, freshly
   * activated and unaware of it.
   */
  onMembershipChange(left: readonly string[]): void {
    for (const nodeId of left) {
      // It may have taken channel notifications with it; inboxes check on their next activation.
      void recordLoss(this.o.store, this.o.nodeId, `node ${nodeId} left`, this.o.log).catch((err: unknown) => this.o.log.warn({ err, nodeId }, 'node loss not recorded'));
      this.system.broadcast('user', { type: 'nodeDown', nodeId });
      void this.deps.deviceNodes.usersOn(nodeId).then(
        (userIds) => {
          for (const userId of userIds) {
            try {
              users(this.deps, userId).tell({ type: 'nodeDown', nodeId });
            } catch (err) {
              this.o.log.warn({ err, nodeId }, 'nodeDown not delivered');
            }
          }
        },
        (err: unknown) => this.o.log.warn({ err, nodeId }, 'could not list users of a departed node'),
      );
    }
    this.system.broadcast('session', { type: 'reattach' });
  }

  /**
   * A link to another node broke: actor messages in flight on it may be lost. Channel
   * notifications are the ones whose loss would go unnoticed (a quiet channel sends no later
   * message to show the gap), so every channel here tells its members its head again.
   */
  onLinkLost(): void {
    this.system.broadcast('channel', { type: 'announce' });
  }

  async start(): Promise<number> {
    // Before serving: a restarted node must not take a token that was logged out, and a node
    // that crashed last time may have lost notifications (actors/node-losses.ts).
    await this.revocations.start();
    await this.scryptThreads.start();
    await markRunning(this.o.store, this.o.nodeId, this.o.log);
    // Before serving: GET /v1/push/vapid-public-key answers from it.
    this.webPushProvider = new WebPushProvider({
      vapid: await loadVapidKeys(this.o.store.kv),
      ...(this.o.push?.vapidSubject ? { subject: this.o.push.vapidSubject } : {}),
      allowInsecure: this.o.push?.allowInsecure ?? false,
    });
    this.port = await this.gateway.listen();
    // One node-wide round instead of a timer per user: a million online users would otherwise
    // hold a million timers. Users without devices ignore it.
    const every = Math.max(250, Math.floor(this.o.timings.presenceTimeoutMs / 4));
    this.expirySweep = setInterval(() => this.system.broadcast('user', { type: 'expireDevices' }), every);
    this.expirySweep.unref();
    this.notifier.start();
    return this.port;
  }

  /**
   * Graceful stop: refuse new connections, close sockets with `closeCode` (1001 going away; 1012
   * when clients should reconnect elsewhere), let every actor persist, flush the store.
   */
  stop(closeCode: number = CloseCodes.GOING_AWAY): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.expirySweep);
      // Before the actors stop: a send in flight asks channels for unread counts.
      await this.notifier.stop();
      this.revocations.stop();
      this.gateway.stopAccepting();
      this.gateway.closeAll(closeCode, closeCode === CloseCodes.RESTART ? 'reconnect to another server' : 'server shutting down');
      await this.system.shutdown();
      await markStopped(this.o.store, this.o.nodeId).catch((err: unknown) => this.o.log.warn({ err }, 'clean stop not recorded'));
      this.loopDelay.stop();
      await this.scryptThreads.close();
      this.gateway.close();
    })();
    return this.stopping;
  }

  /**
   * The node's half of a drain (`parleyctl drain`), run once the cluster has stopped placing
   * actors here: what stop() does to sockets and actors, but the process, its store and its
   * HTTP port stay up (so the operator can still ask it, and SIGTERM later exits cleanly). New
   * sockets are turned away with `closeCode`, as the ones open now are.
   */
  drain(closeCode: number = CloseCodes.RESTART): Promise<void> {
    this.draining ??= (async () => {
      await this.notifier.stop();
      this.gateway.closeAll(closeCode, 'reconnect to another server');
      // Placed actors persist and are activated by their new owners on their next message.
      await this.system.passivateWhere((a) => a.kind !== 'session');
      await markStopped(this.o.store, this.o.nodeId).catch((err: unknown) => this.o.log.warn({ err }, 'clean stop not recorded'));
    })();
    return this.draining;
  }

  private onConnection(conn: Connection): ConnectionHandler {
    if (this.draining) {
      // Not from inside the gateway's open callback: a close there reports itself before the
      // gateway has the handler we are about to return.
      setImmediate(() => conn.close(CloseCodes.RESTART, 'this server is drained; reconnect to another'));
      return DRAINED_HANDLER;
    }
    const key = `${this.o.nodeId}.${conn.id}`;
    const session = this.system.spawn<SessionMessage>('session', key, (ctx) => createSession(ctx, this.deps, conn, this.sessionSettings));
    this.liveSessions++;
    return new SessionLink(this, conn, session);
  }

  /** @internal */
  sessionOverloaded(conn: Connection, key: string, err: unknown): void {
    // The session cannot keep up with its own client: shed the client, not the node.
    this.o.log.warn({ session: key, code: codeOf(err) }, 'session overloaded; closing');
    conn.close(CloseCodes.POLICY, ChatCodes.OVERLOADED);
  }

  /** A session whose login was logged out: it answers UNAUTHENTICATED and closes with 1008. */
  private closeRevoked(key: string): void {
    try {
      sessions(this.deps, key).tell({ type: 'revoked' });
    } catch {
      // Mailbox full: stop it; its socket closes (1011) and the reconnect's hello is refused.
      void this.system.stop({ kind: 'session', key });
    }
  }

  /** @internal */
  sessionGone(session: ActorRef<SessionMessage>, silent: boolean): void {
    try {
      session.tell({ type: 'closed', silent });
    } catch {
      // Mailbox full: stop it directly; its deactivation reports the device gone.
      void this.system.stop(session.address);
    }
  }

  /** @internal */
  badFrame(conn: Connection, message: string, code: typeof ChatCodes.BAD_FRAME | typeof ChatCodes.FRAME_TOO_DEEP = ChatCodes.BAD_FRAME): void {
    conn.send(encodeServerFrame(0, 'error', { code, message }));
    conn.close(CloseCodes.POLICY, code);
  }
}

/**
 * Where the gateway closes a socket as not reading: a session holds at most its bound or one
 * delivery frame, plus answers to its client's own requests, so four bounds and two of the
 * largest frames is a peer that asks and does not read (or is gone), not a slow one.
 */
export function socketMaxUnsentBytes(sessionMaxUnsentBytes: number): number {
  return 4 * sessionMaxUnsentBytes + 2 * MAX_SEND_FRAME_BYTES;
}

/** A socket turned away by a drained node: nothing it sends is read. */
const DRAINED_HANDLER: ConnectionHandler = { onMessage: () => undefined, onDrain: () => undefined, onClose: () => undefined };

/**
 * A socket's events, as messages to its session actor. A class, not closures: one per connection,
 * a million per node.
 */
class SessionLink implements ConnectionHandler {
  constructor(
    private readonly node: ChatNode,
    private readonly conn: Connection,
    private readonly session: ActorRef<SessionMessage>,
  ) {}

  private tell(m: SessionMessage): void {
    try {
      this.session.tell(m);
    } catch (err) {
      this.node.sessionOverloaded(this.conn, this.session.address.key, err);
    }
  }

  onMessage(bytes: Uint8Array, isBinary: boolean): void {
    if (!isBinary) return this.node.badFrame(this.conn, 'frames must be binary protobuf');
    let frame;
    try {
      frame = decodeClientFrame(bytes);
    } catch (err) {
      if (err instanceof FrameDecodeError && err.code === ChatCodes.FRAME_TOO_DEEP) return this.node.badFrame(this.conn, err.message, err.code);
      return this.node.badFrame(this.conn, 'frame is not a valid chat.v1.ClientFrame');
    }
    this.tell({ type: 'frame', frame });
  }

  onDrain(): void {
    this.tell({ type: 'drain' });
  }

  onClose(_code: number, silent: boolean): void {
    this.node.sessionGone(this.session, silent);
  }
}
