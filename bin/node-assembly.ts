/**
 * The composition root: turns a Config into a running node: store, secrets, optional cluster
 * (etcd membership, gRPC transport, placement), chat actors, gateway. The only place that knows
 * every concrete implementation.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from '../runtime/log.ts';
import { openStore, type Store } from '../runtime/storage/index.ts';
import { ClusterRouter } from '../runtime/cluster/cluster-router.ts';
import { createEtcdClient, EtcdMembership, EtcdSlotClaim, SlotClaimError, ensureSharedSecret } from '../runtime/cluster/index.ts';
import { GrpcTransport } from '../runtime/transport/index.ts';
import { deriveKey, loadSigningSecret } from '../actors/auth/signing-secret.ts';
import { TokenSigner } from '../actors/auth/tokens.ts';
import { AdminTokens } from '../actors/auth/admin-token.ts';
import { ChatNode } from '../actors/chat-node.ts';
import { StoredDeviceNodes } from '../actors/user/device-nodes.ts';
import { Snowflake } from '../actors/ids/snowflake.ts';
import { CloseCodes } from '../actors/session/session-actor.ts';
import { KvPresenceDirectory, RedisPresenceDirectory } from '../runtime/presence/index.ts';
import { CorsPolicy } from '../runtime/gateway/index.ts';
import { ConfigError, type Config } from '../config/config.ts';
import { isVapidSubject } from '../runtime/push/vapid.ts';
import { WebhookProvider, type PushProvider } from '../runtime/push/index.ts';
import { RedisJobQueue } from '../runtime/queue/index.ts';
import { PUSH_QUEUE } from '../actors/push/index.ts';
import { instrumentStore, NodeMetrics, registerPeerQueueMetrics } from '../runtime/metrics/index.ts';

export interface RunningNode {
  readonly node: ChatNode;
  readonly port: number;
  /** Graceful stop: leave the cluster first, hand off, close sockets, flush. */
  stop(): Promise<void>;
}

/**
 * The release this build is (package.json's version). Read at run time from the file next to
 * the sources (`bin/../package.json`) or next to the build (`dist/bin/../../package.json`).
 */
export function parleyVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'parley' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not there: try the next place
    }
  }
  return 'unknown';
}

/** Message-id node numbers are 0..1023: 10 bits of every id (actors/ids/snowflake.ts). */
export const NODE_NUMBERS = 1024;

/**
 * Message-id node numbers in a cluster: claimed in etcd (runtime/cluster/etcd-slot-claim.ts) under
 * the member's own lease, so no two live nodes share one, and wired to the Snowflake here.
 *
 * Why a later holder of a number never repeats an id of an earlier one, whatever the clocks:
 * - the holder publishes a reservation (`reserveAheadMs` past its clock and past its highest id
 *   time, refreshed every second) and its Snowflake refuses ids timed past the last reservation
 *   etcd acknowledged (`setCeiling`): ids re-based on a predecessor from a fast clock, or borrowed
 *   from the next millisecond under a burst, included. Past it, a send gets UNAVAILABLE (the
 *   client retries) and the reservation is raised at once;
 * - the reservation can only be raised while the holder's lease-bound key is there, and a claim
 *   reads it in the same transaction that finds that key gone: the claimer sees at least every
 *   time the previous holder could stamp, and its Snowflake starts above that plus the reuse gap
 *   (`bind(number, floorMs)`, holding time still while its clock is behind).
 * A node whose lease lapses (unhealthy) stops serving placed actors (ClusterRouter.stopServing);
 * channel actors, the only ones that take message ids, are placed, so it takes none until it is
 * healthy again and, if its lease was replaced, has claimed a number again under the new lease.
 * Whatever it took before stayed within its reservation, which the next holder starts above.
 *
 * `reserveAheadMs` is the lease TTL plus 2 s: while the node counts itself healthy (its last
 * renewal is < 0.9 TTL old) its last reservation (refreshed every second to the same etcd) still
 * reaches ahead, so the ceiling never refuses a healthy node's sends, not even through an etcd
 * restart that the lease rides out.
 *
 * The reuse gap (10 s): how long past a number's last reservation, by the claimer's clock, an
 * automatic claim waits before taking the number again; the next holder's floor includes it too.
 * Uniqueness does not rest on it (the reservation bounds what the old holder stamped, whatever
 * the clocks). It is a margin: a reused number's ids come from the new holder's own clock instead
 * of being held at the floor ahead of real time, and ids would still not meet if a reservation
 * record were lost, as with an etcd restored from a backup a few seconds old. It costs only that a
 * SIGKILLed node's number is free again after about TTL + 2 s + 10 s rather than TTL + 2 s, out
 * of 1024. A configured `--node-number` that no live node holds is taken at once even within the
 * gap: its ids start above the floor, up to TTL + 12 s ahead of the clock until it catches up.
 */
const NODE_NUMBER_REUSE_GAP_MS = 10_000;

/** Where a cluster's node-number claims live in etcd. */
export function nodeNumberPrefix(clusterPrefix: string): string {
  return `${clusterPrefix.replace(/\/+$/, '')}/node-numbers`;
}

/** A refused node-number claim, in the operator's terms. */
function nodeNumberError(err: unknown, config: Config): Error | undefined {
  let e: unknown = err;
  while (e !== undefined && !(e instanceof SlotClaimError)) e = (e as { cause?: unknown }).cause;
  if (!(e instanceof SlotClaimError)) return undefined;
  const d = e.details;
  switch (e.code) {
    case 'SLOT_HELD':
      return new Error(`--node-number ${d.slot} is held by live node ${d.holder}: two nodes with one number would hand out the same message ids. Choose another number, or leave --node-number unset to claim a free one.`);
    case 'SLOTS_EXHAUSTED': {
      const again = d.freeAgainAtMs === undefined ? '' : `; the first is free again in ${Math.max(1, Math.ceil((d.freeAgainAtMs - Date.now()) / 1000))} s`;
      return new Error(`no message-id node number is free in cluster ${config.cluster_prefix}: all ${d.size} are held by live nodes (${d.held}) or within their ${NODE_NUMBER_REUSE_GAP_MS / 1000} s reuse gap (${d.cooling})${again}`);
    }
    default:
      return new Error(`could not claim a message-id node number in etcd: ${e.message}`, { cause: e.cause });
  }
}

/** The push providers the settings ask for; a half-configured one fails here, before anything opens. */
export function pushProvidersOf(config: Pick<Config, 'push_webhook' | 'push_webhook_secret'>): PushProvider[] {
  const providers: PushProvider[] = [];
  if (config.push_webhook_secret && !config.push_webhook) throw new ConfigError('--push-webhook-secret is set but --push-webhook is not');
  if (config.push_webhook) {
    if (!config.push_webhook_secret) throw new ConfigError('--push-webhook needs --push-webhook-secret: the receiver checks X-Parley-Signature with it');
    try {
      providers.push(new WebhookProvider({ url: config.push_webhook, secret: config.push_webhook_secret }));
    } catch (err) {
      throw new ConfigError(err instanceof Error ? err.message : String(err));
    }
  }
  return providers;
}

/** The gRPC address peers are told to dial: `grpc_advertise` when set (checked here), else undefined. */
export function grpcAdvertiseOf(config: Pick<Config, 'grpc_advertise'>): string | undefined {
  const a = config.grpc_advertise;
  if (a === undefined) return undefined;
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(a);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new ConfigError(`--grpc-advertise must be HOST:PORT (a host name or address, a port 1-65535), got ${JSON.stringify(a)}`);
  }
  return a;
}

export async function assembleNode(config: Config, log: Logger): Promise<RunningNode> {
  // Bad settings fail here, before anything is opened.
  const cors = CorsPolicy.parse(config.cors_origins);
  const grpcAdvertise = grpcAdvertiseOf(config);
  if (config.push_vapid_subject !== undefined && !isVapidSubject(config.push_vapid_subject)) {
    throw new ConfigError(`--push-vapid-subject must be a mailto: address or an https: URL, got ${JSON.stringify(config.push_vapid_subject)}`);
  }
  const pushProviders = pushProvidersOf(config);
  const metrics = new NodeMetrics();
  // Timed at the seam: every store call of the node, chat or runtime, lands in one histogram.
  const store: Store = instrumentStore(await openStore(config.store, { log, dataDir: config.data_dir, durability: config.durability }), metrics);
  const etcd = config.etcd ? createEtcdClient({ hosts: config.etcd.split(',').map((h) => h.trim()) }) : undefined;

  let secret: Buffer;
  if (config.secret_file) {
    secret = Buffer.from(readFileSync(config.secret_file, 'utf8').trim(), 'utf8');
    if (secret.length < 32) throw new Error(`secret file ${config.secret_file} must hold at least 32 characters`);
  } else if (etcd) {
    // The first node creates it (a create-if-absent transaction); every node reads the same one.
    secret = Buffer.from(await ensureSharedSecret(etcd, `${config.cluster_prefix}/secret`, () => randomBytes(48).toString('base64url')), 'utf8');
  } else {
    secret = loadSigningSecret({ dataDir: config.data_dir });
  }
  const signer = new TokenSigner(deriveKey(secret, 'tokens'), config.token_ttl_s);

  // A single node keeps its configured number (1 by default); a cluster member is bound once it
  // has claimed one, and refuses ids until then.
  const ids = etcd ? new Snowflake() : new Snowflake(config.node_number ?? 1);
  let transport: GrpcTransport | undefined;
  let membership: EtcdMembership | undefined;
  let numbers: EtcdSlotClaim | undefined;
  if (etcd) {
    const claim = new EtcdSlotClaim({
      client: etcd,
      prefix: nodeNumberPrefix(config.cluster_prefix),
      holder: config.node_id,
      size: NODE_NUMBERS,
      ...(config.node_number !== undefined ? { wanted: config.node_number } : {}),
      reuseGapMs: NODE_NUMBER_REUSE_GAP_MS,
      reserveAheadMs: config.lease_ttl_s * 1000 + 2_000,
      inUseUntil: () => ids.highWaterMs,
      logger: log,
    });
    numbers = claim;
    claim.onClaim((grant) => {
      ids.bind(grant.slot, grant.floorMs);
      log.info({ node_number: grant.slot, configured: config.node_number ?? null, floor_ms: grant.floorMs, claim_ms: grant.tookMs }, 'message-id node number claimed');
    });
    claim.onReserve((untilMs) => ids.setCeiling(untilMs));
    ids.onCeiling((neededMs) => claim.reserve(neededMs));
    membership = new EtcdMembership({ client: etcd, prefix: config.cluster_prefix, ttlSeconds: config.lease_ttl_s, healthMargin: 0.9, logger: log, leaseBound: [claim] });
    // Fail before opening any port if the node id or the number is taken (waiting out a previous
    // run of this node whose lease has not lapsed yet); the registration itself checks again
    // atomically, for a node that starts at the same moment.
    await membership.precheck(config.node_id, config.lease_ttl_s * 1000 + 2_000);
    await claim.precheck(config.lease_ttl_s * 1000 + 2_000).catch((err: unknown) => {
      throw nodeNumberError(err, config) ?? err;
    });
    transport = new GrpcTransport({
      nodeId: config.node_id,
      listenAddress: `${config.grpc_host ?? config.host}:${config.grpc_port}`,
      clusterSecret: deriveKey(secret, 'cluster').toString('hex'),
      logger: log,
    });
    await transport.start();
    const t = transport;
    registerPeerQueueMetrics(metrics, () => t.queueDepths());
  }

  const touchIntervalMs = Math.max(50, Math.floor(config.presence_timeout_ms / 6));
  const presence = config.redis
    ? new RedisPresenceDirectory({ url: config.redis, onlineTtlMs: config.presence_timeout_ms + touchIntervalMs, log })
    : membership
      ? new KvPresenceDirectory(store.kv)
      : undefined;
  // With Redis, push jobs are queued there (a stream read by a consumer group); without, in the
  // store's tables (ChatNode's default). Every node of a cluster must use the same one.
  const pushQueue = config.redis ? new RedisJobQueue({ url: config.redis, name: PUSH_QUEUE, consumer: `${config.node_id}/${randomBytes(4).toString('hex')}` }) : undefined;
  const node = new ChatNode({
    nodeId: config.node_id,
    ids,
    host: config.host,
    port: config.port,
    ...(config.public_url ? { publicUrl: config.public_url } : {}),
    cors,
    store,
    signer,
    passwordCost: { logN: config.scrypt_log_n, r: 8, p: 1 },
    log,
    actorIdleMs: config.actor_idle_ms,
    timings: {
      heartbeatIntervalMs: config.heartbeat_interval_ms,
      presenceTimeoutMs: config.presence_timeout_ms,
      touchIntervalMs,
      fanoutTimeoutMs: config.fanout_timeout_ms,
    },
    limits: {
      sendRatePerSec: config.send_rate,
      sendBurst: config.send_burst,
      authPerMinute: config.auth_per_minute,
      loginFailLimit: config.login_fail_limit,
      loginFailWindowMs: config.login_fail_window_ms,
      maxFrameBytes: config.max_frame_bytes,
      maxHttpBodyBytes: config.max_http_body_bytes,
      maxInflightSends: config.max_inflight_sends,
      sessionMaxUnsentBytes: config.session_max_unsent_bytes,
    },
    ...(presence ? { presence } : {}),
    ...(membership ? { deviceNodes: new StoredDeviceNodes(store) } : {}),
    adminTokens: new AdminTokens(secret),
    version: parleyVersion(),
    metrics,
    // Not ready until this node is in the cluster's membership with a live lease (joined after
    // the port opens, so there is a window where /healthz answers and /readyz does not).
    ...(membership ? { registration: () => (membership!.selfHealthy() ? undefined : 'not registered in the cluster (etcd membership not joined, or its lease may have lapsed)') } : {}),
    push: {
      providers: pushProviders,
      coalesceMs: config.push_coalesce_ms,
      includeText: config.push_include_text,
      maxAttempts: config.push_max_attempts,
      retryBaseMs: config.push_retry_base_ms,
      allowInsecure: config.push_allow_insecure,
      ...(pushQueue ? { queue: pushQueue } : {}),
      ...(config.push_vapid_subject ? { vapidSubject: config.push_vapid_subject } : {}),
    },
  });

  let router: ClusterRouter | undefined;
  let loadTimer: NodeJS.Timeout | undefined;
  if (membership && transport) {
    router = new ClusterRouter({
      nodeId: config.node_id,
      system: node.system,
      membership,
      transport,
      log,
      pinnedNode: (a) => (a.kind === 'session' ? a.key.slice(0, a.key.lastIndexOf('.')) : undefined),
    });
    node.system.setRemoteRouter(router);
    const r = router;
    node.useDiscovery({
      servers: () =>
        [...r.view()]
          .sort((a, b) => a.load - b.load || a.nodeId.localeCompare(b.nodeId))
          .map((m) => ({ node_id: m.nodeId, ws_url: m.wsUrl })),
    });
    router.onMembershipChange((change) => node.onMembershipChange(change.left));
    router.onLinkDown(() => node.onLinkLost());
  }

  /**
   * Leaving placement, as the first half of a graceful stop and as `parleyctl drain`: peers stop
   * routing here, our actors persist and move on their next message, clients are told to
   * reconnect elsewhere (1012). Once, whoever asks first.
   */
  let leaving: Promise<void> | undefined;
  const leaveCluster = (): Promise<void> =>
    (leaving ??= (async () => {
      clearInterval(loadTimer);
      router?.beginLeave();
      await membership!.leave().catch((err: unknown) => log.warn({ err }, 'leaving the cluster failed'));
      // Ids taken during the hand-off stay within the last reservation, which the number's
      // next holder starts above.
      numbers?.close();
    })());
  if (membership && router) {
    const r = router;
    node.useCluster({
      members: () => r.view().map((m) => ({ node_id: m.nodeId, ws_url: m.wsUrl, load: m.load, started_at_ms: m.startedAtMs })),
      // A node that lost its own membership names no owner (ClusterRouter's sentinel): say so.
      ownerOf: (kind, key) => {
        const owner = r.ownerOf({ kind, key });
        return owner === undefined ? config.node_id : owner.startsWith('\u0000') ? 'unknown (this node lost its membership)' : owner;
      },
      drain: async () => {
        log.info('draining: leaving placement, handing off actors and sockets (the process keeps running)');
        await leaveCluster();
        await node.drain(CloseCodes.RESTART);
        log.info('drained');
      },
    });
  }

  const port = await node.start();
  if (membership && transport) {
    await membership.join({ nodeId: config.node_id, grpcAddress: grpcAdvertise ?? transport.address, wsUrl: node.publicUrl, load: 0, startedAtMs: Date.now() }).catch((err: unknown) => {
      throw nodeNumberError(err, config) ?? err;
    });
    loadTimer = setInterval(() => membership!.setLoad(node.connectionCount), 1_000);
    loadTimer.unref();
  }

  let stopping: Promise<void> | undefined;
  return {
    node,
    port,
    stop: () =>
      (stopping ??= (async () => {
        clearInterval(loadTimer);
        if (membership) {
          await leaveCluster();
          await node.stop(CloseCodes.RESTART);
        } else {
          await node.stop(CloseCodes.GOING_AWAY);
        }
        await transport?.stop();
        if (presence instanceof RedisPresenceDirectory) await presence.close();
        await pushQueue?.close();
        etcd?.close();
        await store.close();
      })()),
  };
}
