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
import { createEtcdClient, EtcdMembership, ensureSharedSecret } from '../runtime/cluster/index.ts';
import { GrpcTransport } from '../runtime/transport/index.ts';
import { deriveKey, loadSigningSecret } from '../actors/auth/signing-secret.ts';
import { TokenSigner } from '../actors/auth/tokens.ts';
import { ChatNode } from '../actors/chat-node.ts';
import { CloseCodes } from '../actors/session/session-actor.ts';
import { KvPresenceDirectory, RedisPresenceDirectory } from '../runtime/presence/index.ts';
import type { Config } from '../config/config.ts';

export interface RunningNode {
  readonly node: ChatNode;
  readonly port: number;
  /** Graceful stop: leave the cluster first, hand off, close sockets, flush. */
  stop(): Promise<void>;
}

export async function assembleNode(config: Config, log: Logger): Promise<RunningNode> {
  const store: Store = await openStore(config.store, { log, dataDir: config.data_dir, durability: config.durability });
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

  let transport: GrpcTransport | undefined;
  let membership: EtcdMembership | undefined;
  if (etcd) {
    transport = new GrpcTransport({
      nodeId: config.node_id,
      listenAddress: `${config.grpc_host ?? config.host}:${config.grpc_port}`,
      clusterSecret: deriveKey(secret, 'cluster').toString('hex'),
      logger: log,
    });
    await transport.start();
    membership = new EtcdMembership({ client: etcd, prefix: config.cluster_prefix, ttlSeconds: config.lease_ttl_s, healthMargin: 0.9, logger: log });
  }

  const touchIntervalMs = Math.max(50, Math.floor(config.presence_timeout_ms / 6));
  const presence = config.redis
    ? new RedisPresenceDirectory({ url: config.redis, onlineTtlMs: config.presence_timeout_ms + touchIntervalMs, log })
    : membership
      ? new KvPresenceDirectory(store.kv)
      : undefined;
  const node = new ChatNode({
    nodeId: config.node_id,
    nodeNumber: config.node_number,
    host: config.host,
    port: config.port,
    ...(config.public_url ? { publicUrl: config.public_url } : {}),
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
      maxFrameBytes: config.max_frame_bytes,
      maxHttpBodyBytes: config.max_http_body_bytes,
      maxInflightSends: config.max_inflight_sends,
    },
    ...(presence ? { presence } : {}),
    clustered: membership !== undefined,
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
  }

  const port = await node.start();
  if (membership && transport) {
    await membership.join({ nodeId: config.node_id, grpcAddress: transport.address, wsUrl: node.publicUrl, load: 0, startedAtMs: Date.now() });
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
          router?.beginLeave();
          // Leave first: peers stop routing here, then our actors persist and move on their
          // next message; clients are told to reconnect elsewhere (1012).
          await membership.leave().catch((err: unknown) => log.warn({ err }, 'leaving the cluster failed'));
          await node.stop(CloseCodes.RESTART);
        } else {
          await node.stop(CloseCodes.GOING_AWAY);
        }
        await transport?.stop();
        if (presence instanceof RedisPresenceDirectory) await presence.close();
        etcd?.close();
        await store.close();
      })()),
  };
}
