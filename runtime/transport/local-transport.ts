import { validateEnvelope } from './envelope-codec.ts';
import { EnvelopeQueue } from './envelope-queue.ts';
import type { Envelope, Transport } from './transport.ts';
import { TransportError } from './transport-error.ts';

/**
 * The "network" of an in-process cluster: which transport listens at which address. Every
 * LocalTransport of one test cluster shares one LocalNetwork.
 */
export class LocalNetwork {
  private readonly listeners = new Map<string, LocalTransport>();
  private readonly members = new Set<LocalTransport>();

  /** @internal */
  join(t: LocalTransport): void {
    this.members.add(t);
  }

  /** @internal */
  listen(address: string, t: LocalTransport): void {
    const current = this.listeners.get(address);
    if (current !== undefined && current !== t) {
      throw new TransportError('LISTEN_FAILED', `address ${address} is already in use`);
    }
    this.listeners.set(address, t);
    for (const m of this.members) m.peerListening(address);
  }

  /** @internal */
  unlisten(address: string, t: LocalTransport): void {
    if (this.listeners.get(address) !== t) return;
    this.listeners.delete(address);
    for (const m of this.members) if (m !== t) m.peerGone(address);
  }

  /** @internal */
  leave(t: LocalTransport): void {
    this.members.delete(t);
  }

  /** @internal */
  at(address: string): LocalTransport | undefined {
    return this.listeners.get(address);
  }
}

export interface LocalTransportOptions {
  readonly network: LocalNetwork;
  readonly nodeId: string;
  /** Any unique string; peers use it in `send`. */
  readonly address: string;
  /** Links between transports with different secrets are refused, as over gRPC. Default ''. */
  readonly clusterSecret?: string;
  /** Per-peer queue bound in envelopes. Default 100,000. */
  readonly maxQueuedEnvelopes?: number;
  /** Per-peer queue bound in approximate bytes. Default 32 MiB. */
  readonly maxQueuedBytes?: number;
}

interface Link {
  address: string;
  readonly queue: EnvelopeQueue;
  flushScheduled: boolean;
  /** Whether the last attempt reached the peer; a failure after success (or first) is reported. */
  up: boolean;
  reportedDown: boolean;
}

/**
 * In-process Transport for tests and single-process clusters, with the same observable
 * behaviour as GrpcTransport: per-peer FIFO batches delivered on a later event-loop turn,
 * bounded queues (BACKPRESSURE), queued envelopes waiting out a down peer, onPeerDown once per
 * break, refusal on a secret mismatch. Payload bytes are copied, as a wire would, so sender
 * and receiver never share a buffer.
 */
export class LocalTransport implements Transport {
  private readonly links = new Map<string, Link>();
  private envelopeHandler: (env: Envelope, fromNode: string) => void = () => undefined;
  private peerDownHandler: (nodeId: string) => void = () => undefined;
  private started = false;
  private stopped = false;

  constructor(private readonly options: LocalTransportOptions) {
    options.network.join(this);
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  get address(): string {
    return this.options.address;
  }

  async start(): Promise<void> {
    if (this.stopped) throw new TransportError('STOPPED', 'transport was stopped');
    if (this.started) return;
    this.options.network.listen(this.options.address, this);
    this.started = true;
  }

  send(nodeId: string, address: string, env: Envelope): void {
    if (this.stopped) throw new TransportError('STOPPED', 'transport was stopped');
    validateEnvelope(env);
    let link = this.links.get(nodeId);
    if (link === undefined) {
      link = {
        address,
        queue: new EnvelopeQueue({
          maxEnvelopes: this.options.maxQueuedEnvelopes ?? 100_000,
          maxBytes: this.options.maxQueuedBytes ?? 32 * 1024 * 1024,
        }),
        flushScheduled: false,
        up: false,
        reportedDown: false,
      };
      this.links.set(nodeId, link);
    } else if (link.address !== address) {
      link.address = address;
      link.up = false;
      link.reportedDown = false;
    }
    if (!link.queue.push(env)) {
      throw new TransportError('BACKPRESSURE', `queue for ${nodeId} is full (${link.queue.length} envelopes)`);
    }
    this.scheduleFlush(nodeId, link);
  }

  onEnvelope(handler: (env: Envelope, fromNode: string) => void): void {
    this.envelopeHandler = handler;
  }

  onPeerDown(handler: (nodeId: string) => void): void {
    this.peerDownHandler = handler;
  }

  dropPeer(nodeId: string): void {
    this.links.get(nodeId)?.queue.clear();
    this.links.delete(nodeId);
  }

  /** Envelopes waiting in the queue for `nodeId` (0 for an unknown peer). */
  queuedFor(nodeId: string): number {
    return this.links.get(nodeId)?.queue.length ?? 0;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const link of this.links.values()) link.queue.clear();
    this.links.clear();
    if (this.started) this.options.network.unlisten(this.options.address, this);
    this.options.network.leave(this);
  }

  /** @internal A transport started listening at `address`: flush what waited for it. */
  peerListening(address: string): void {
    for (const [nodeId, link] of this.links) if (link.address === address) this.scheduleFlush(nodeId, link);
  }

  /** @internal The transport at `address` stopped: its links break now, not at the next send. */
  peerGone(address: string): void {
    for (const [nodeId, link] of this.links) {
      if (link.address === address && link.up) this.markDown(nodeId, link);
    }
  }

  /** @internal */
  receive(batch: readonly Envelope[], fromNode: string, secret: string): boolean {
    if (!this.started || this.stopped || secret !== (this.options.clusterSecret ?? '')) return false;
    for (const env of batch) {
      try {
        this.envelopeHandler(env, fromNode);
      } catch {
        // As over gRPC: a throwing handler is the receiver's bug and must not break the link.
      }
    }
    return true;
  }

  private scheduleFlush(nodeId: string, link: Link): void {
    if (link.flushScheduled) return;
    link.flushScheduled = true;
    setImmediate(() => {
      link.flushScheduled = false;
      if (this.links.get(nodeId) === link && !this.stopped) this.flush(nodeId, link);
    });
  }

  private flush(nodeId: string, link: Link): void {
    if (link.queue.length === 0) return;
    const target = this.options.network.at(link.address);
    if (target === undefined) {
      this.markDown(nodeId, link);
      return;
    }
    const batch = link.queue.takeBatch(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER).map(copyEnvelope);
    if (!target.receive(batch, this.options.nodeId, this.options.clusterSecret ?? '')) {
      // Refused before anything was accepted: put them back, as a refused gRPC stream writes nothing.
      for (const env of batch) link.queue.push(env);
      this.markDown(nodeId, link);
      return;
    }
    link.up = true;
    link.reportedDown = false;
  }

  private markDown(nodeId: string, link: Link): void {
    link.up = false;
    if (link.reportedDown) return;
    link.reportedDown = true;
    try {
      this.peerDownHandler(nodeId);
    } catch {
      // the kernel's bug; keep the transport going
    }
  }
}

function copyEnvelope(env: Envelope): Envelope {
  const copy: Envelope = { ...env, payload: env.payload.slice() };
  return copy;
}
