import * as grpc from '@grpc/grpc-js';
import { silentLogger, type Logger } from '../log.ts';
import { CLUSTER_SECRET_HEADER, NODE_ID_HEADER, secretMatches } from './cluster-secret.ts';
import { validateEnvelope } from './envelope-codec.ts';
import { PeerLink } from './grpc-peer-link.ts';
import { ACCEPTED_HEADER, KEEPALIVE_OPTIONS, MAX_FRAME_BYTES, type Batch, clusterTransportService } from './grpc-wire.ts';
import { widenInboundWindow } from './http2-window.ts';
import { DEFAULT_BACKOFF, type BackoffPolicy } from './reconnect-backoff.ts';
import type { Envelope, Transport } from './transport.ts';
import { TransportError } from './transport-error.ts';

export interface GrpcTransportOptions {
  /** This node's id, sent to peers so they can tell who a stream is from. */
  readonly nodeId: string;
  /** `host:port` to listen on; port 0 picks a free one (read it back from `address`). */
  readonly listenAddress: string;
  /** Shared by every node of the cluster; streams without it are refused. */
  readonly clusterSecret: string;
  /** Per-peer queue bound in envelopes. Default 100,000. */
  readonly maxQueuedEnvelopes?: number;
  /** Per-peer queue bound in approximate bytes. Default 32 MiB. */
  readonly maxQueuedBytes?: number;
  /** Most envelopes in one written batch. Default 1,024. */
  readonly maxBatchEnvelopes?: number;
  /** Most approximate bytes in one written batch. Default 1 MiB. */
  readonly maxBatchBytes?: number;
  /** Reconnect delays. Default 100 ms doubling to 5 s, with jitter. */
  readonly backoff?: BackoffPolicy;
  /** A stream not accepted within this is a failed attempt. Default 5 s. */
  readonly connectTimeoutMs?: number;
  readonly logger?: Logger;
}

/**
 * Transport over gRPC (@grpc/grpc-js) bidirectional streams. Each node opens its own outbound
 * stream to each peer it sends to and only writes on it, so a pair of nodes that talk both
 * ways holds two streams (one per direction, usually on two HTTP/2 connections). That keeps
 * per-peer FIFO order trivially (one writer, one stream) and lets each side reconnect on its
 * own without any dialing election.
 */
export class GrpcTransport implements Transport {
  private readonly links = new Map<string, PeerLink>();
  private readonly logger: Logger;
  private server: grpc.Server | undefined;
  private boundAddress: string | undefined;
  private envelopeHandler: (env: Envelope, fromNode: string) => void = () => undefined;
  private peerDownHandler: (nodeId: string) => void = () => undefined;
  private stopped = false;
  private widened = false;

  constructor(private readonly options: GrpcTransportOptions) {
    this.logger = options.logger ?? silentLogger();
  }

  /** The address peers should dial, known once `start()` resolved. */
  get address(): string {
    if (this.boundAddress === undefined) throw new Error('GrpcTransport.address read before start()');
    return this.boundAddress;
  }

  /** Whether inbound streams get the wide HTTP/2 window (see http2-window.ts). */
  get windowWidened(): boolean {
    return this.widened;
  }

  async start(): Promise<void> {
    if (this.stopped) throw new TransportError('STOPPED', 'transport was stopped');
    if (this.server !== undefined) return;
    const server = new grpc.Server({
      ...KEEPALIVE_OPTIONS,
      'grpc.max_receive_message_length': MAX_FRAME_BYTES,
    });
    server.addService(clusterTransportService, {
      Connect: (call: grpc.ServerDuplexStream<Batch, Batch>) => this.accept(call),
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(this.options.listenAddress, grpc.ServerCredentials.createInsecure(), (err, boundPort) => {
        if (err) reject(new TransportError('LISTEN_FAILED', `cannot listen on ${this.options.listenAddress}`, { cause: err }));
        else resolve(boundPort);
      });
    });
    this.server = server;
    this.widened = widenInboundWindow(server);
    if (!this.widened) this.logger.warn('could not raise the HTTP/2 window; inter-node throughput will be lower');
    const host = this.options.listenAddress.slice(0, this.options.listenAddress.lastIndexOf(':'));
    this.boundAddress = `${host}:${port}`;
  }

  send(nodeId: string, address: string, env: Envelope): void {
    if (this.stopped) throw new TransportError('STOPPED', 'transport was stopped');
    // Checked here, where the caller can see it, rather than failing a whole batch at write time.
    validateEnvelope(env);
    let link = this.links.get(nodeId);
    if (link === undefined) {
      link = new PeerLink(nodeId, address, {
        selfNodeId: this.options.nodeId,
        clusterSecret: this.options.clusterSecret,
        queue: {
          maxEnvelopes: this.options.maxQueuedEnvelopes ?? 100_000,
          maxBytes: this.options.maxQueuedBytes ?? 32 * 1024 * 1024,
        },
        maxBatchEnvelopes: this.options.maxBatchEnvelopes ?? 1024,
        maxBatchBytes: this.options.maxBatchBytes ?? 1024 * 1024,
        backoff: this.options.backoff ?? DEFAULT_BACKOFF,
        connectTimeoutMs: this.options.connectTimeoutMs ?? 5_000,
        logger: this.logger,
        onDown: (id) => this.notifyPeerDown(id),
      });
      this.links.set(nodeId, link);
    } else if (link.address !== address) {
      link.retarget(address);
    }
    link.enqueue(env);
  }

  onEnvelope(handler: (env: Envelope, fromNode: string) => void): void {
    this.envelopeHandler = handler;
  }

  onPeerDown(handler: (nodeId: string) => void): void {
    this.peerDownHandler = handler;
  }

  dropPeer(nodeId: string): void {
    const link = this.links.get(nodeId);
    if (link === undefined) return;
    this.links.delete(nodeId);
    link.close();
  }

  /** Envelopes waiting for each peer this node has a link to (for metrics, read when scraped). */
  queueDepths(): [peer: string, depth: number][] {
    return [...this.links].map(([peer, link]) => [peer, link.queued]);
  }

  /** Envelopes waiting in the queue for `nodeId` (0 for an unknown peer). */
  queuedFor(nodeId: string): number {
    return this.links.get(nodeId)?.queued ?? 0;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const link of this.links.values()) link.close();
    this.links.clear();
    // Force: the contract is "discard", and a graceful shutdown would wait on peers' streams.
    this.server?.forceShutdown();
    this.server = undefined;
  }

  private accept(call: grpc.ServerDuplexStream<Batch, Batch>): void {
    const presented = call.metadata.get(CLUSTER_SECRET_HEADER)[0];
    if (this.stopped || !secretMatches(this.options.clusterSecret, typeof presented === 'string' ? presented : undefined)) {
      this.logger.warn({ peer: call.getPeer() }, 'refused inter-node stream: bad or missing cluster secret');
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'cluster secret mismatch' });
      return;
    }
    const fromHeader = call.metadata.get(NODE_ID_HEADER)[0];
    const fromNode = typeof fromHeader === 'string' ? fromHeader : '';
    const accepted = new grpc.Metadata();
    accepted.set(ACCEPTED_HEADER, '1');
    call.sendMetadata(accepted);
    call.on('data', (batch: Batch) => {
      for (let i = 0; i < batch.length; i++) this.deliver(batch[i]!, fromNode);
    });
    // A cancelled or failed stream is the sender's to re-open; nothing to clean up here.
    call.on('error', () => undefined);
    // The sender half-closed: finish our (empty) side so the call completes with OK.
    call.on('end', () => call.end());
  }

  private deliver(env: Envelope, fromNode: string): void {
    try {
      this.envelopeHandler(env, fromNode);
    } catch (err) {
      // A throwing handler is the kernel's bug; it must not take the whole link down with it.
      this.logger.error({ err, fromNode, targetKind: env.targetKind }, 'envelope handler threw');
    }
  }

  private notifyPeerDown(nodeId: string): void {
    try {
      this.peerDownHandler(nodeId);
    } catch (err) {
      this.logger.error({ err, nodeId }, 'peer-down handler threw');
    }
  }
}
