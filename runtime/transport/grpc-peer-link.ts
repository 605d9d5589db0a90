import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log.ts';
import { CLUSTER_SECRET_HEADER, NODE_ID_HEADER } from './cluster-secret.ts';
import { EnvelopeQueue, type QueueBounds } from './envelope-queue.ts';
import { ACCEPTED_HEADER, CONNECT_PATH, KEEPALIVE_OPTIONS, MAX_FRAME_BYTES, type Batch, connectMethod } from './grpc-wire.ts';
import { backoffDelay, type BackoffPolicy } from './reconnect-backoff.ts';
import type { Envelope } from './transport.ts';
import { TransportError } from './transport-error.ts';

export interface PeerLinkOptions {
  readonly selfNodeId: string;
  readonly clusterSecret: string;
  readonly queue: QueueBounds;
  readonly maxBatchEnvelopes: number;
  readonly maxBatchBytes: number;
  readonly backoff: BackoffPolicy;
  /** How long a stream may take to be accepted before the attempt counts as failed. */
  readonly connectTimeoutMs: number;
  readonly logger: Logger;
  readonly onDown: (nodeId: string) => void;
}

type LinkState = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';

/**
 * The outbound half of the link to one peer: a queue, one long-lived gRPC stream on which only
 * this side writes, and the reconnect loop. Writing starts only after the server accepted the
 * stream, so a refused stream (wrong secret) never carries an envelope.
 */
export class PeerLink {
  private state: LinkState = 'idle';
  private readonly queue: EnvelopeQueue;
  private client: grpc.Client | undefined;
  private call: grpc.ClientDuplexStream<Batch, Batch> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private flushScheduled = false;
  private awaitingDrain = false;
  private attempt = 0;
  /** True from the break until a reconnect succeeds, so onDown fires once per break. */
  private reportedDown = false;

  constructor(
    readonly nodeId: string,
    private addressValue: string,
    private readonly options: PeerLinkOptions,
  ) {
    this.queue = new EnvelopeQueue(options.queue);
  }

  get address(): string {
    return this.addressValue;
  }

  get queued(): number {
    return this.queue.length;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  enqueue(env: Envelope): void {
    if (this.state === 'closed') throw new TransportError('STOPPED', `link to ${this.nodeId} is closed`);
    if (!this.queue.push(env)) {
      throw new TransportError(
        'BACKPRESSURE',
        `queue for ${this.nodeId} is full (${this.queue.length} envelopes, ${this.queue.bytes} bytes)`,
      );
    }
    if (this.state === 'idle') this.connect();
    else if (this.state === 'open') this.scheduleFlush();
  }

  /** Points the link at a new address (the peer moved); queued envelopes stay and follow it. */
  retarget(address: string): void {
    if (address === this.addressValue || this.state === 'closed') return;
    this.addressValue = address;
    this.teardownCall();
    this.attempt = 0;
    this.connect();
  }

  close(): void {
    this.state = 'closed';
    this.teardownCall();
    this.queue.clear();
  }

  private connect(): void {
    this.clearTimer();
    this.state = 'connecting';
    // A fresh channel per attempt, with its own subchannel pool, so grpc-js's internal
    // reconnect backoff never stacks on top of ours.
    const client = new grpc.Client(this.addressValue, grpc.credentials.createInsecure(), {
      ...KEEPALIVE_OPTIONS,
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_send_message_length': MAX_FRAME_BYTES,
      'grpc.max_receive_message_length': MAX_FRAME_BYTES,
    });
    const metadata = new grpc.Metadata();
    metadata.set(CLUSTER_SECRET_HEADER, this.options.clusterSecret);
    metadata.set(NODE_ID_HEADER, this.options.selfNodeId);
    const call = client.makeBidiStreamRequest<Batch, Batch>(
      CONNECT_PATH,
      connectMethod.requestSerialize,
      connectMethod.responseDeserialize,
      metadata,
    );
    this.client = client;
    this.call = call;
    call.on('metadata', (headers: grpc.Metadata) => {
      if (call !== this.call) return;
      if (headers.get(ACCEPTED_HEADER).length === 0) return;
      this.onOpen();
    });
    // The response direction carries nothing today; reading keeps the stream flowing.
    call.on('data', () => undefined);
    // 'error' always precedes 'status' for a failed call; 'status' is the one place we react.
    call.on('error', () => undefined);
    call.on('status', (status: grpc.StatusObject) => this.onBroken(call, status));
    this.timer = setTimeout(() => {
      if (call === this.call && this.state === 'connecting') {
        this.onBroken(call, { code: grpc.status.DEADLINE_EXCEEDED, details: 'stream not accepted in time', metadata: new grpc.Metadata() });
      }
    }, this.options.connectTimeoutMs);
  }

  private onOpen(): void {
    this.clearTimer();
    this.state = 'open';
    this.attempt = 0;
    if (this.reportedDown) this.options.logger.info({ peer: this.nodeId }, 'peer link re-established');
    this.reportedDown = false;
    this.awaitingDrain = false;
    this.scheduleFlush();
  }

  private onBroken(call: grpc.ClientDuplexStream<Batch, Batch>, status: grpc.StatusObject): void {
    if (call !== this.call || this.state === 'closed') return;
    this.teardownCall();
    this.state = 'waiting';
    if (status.code === grpc.status.UNAUTHENTICATED) {
      this.options.logger.error({ peer: this.nodeId, address: this.addressValue }, 'peer refused our cluster secret');
    } else {
      this.options.logger.debug({ peer: this.nodeId, code: status.code, details: status.details }, 'peer link broken');
    }
    const delay = backoffDelay(this.attempt++, this.options.backoff);
    this.timer = setTimeout(() => this.connect(), delay);
    if (!this.reportedDown) {
      this.reportedDown = true;
      this.options.onDown(this.nodeId);
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.awaitingDrain) return;
    this.flushScheduled = true;
    // setImmediate rather than a microtask: every send of the current turn joins the batch.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const call = this.call;
    if (this.state !== 'open' || call === undefined || this.awaitingDrain) return;
    while (this.queue.length > 0) {
      const batch = this.queue.takeBatch(this.options.maxBatchEnvelopes, this.options.maxBatchBytes);
      if (!call.write(batch)) {
        this.awaitingDrain = true;
        call.once('drain', () => {
          if (call !== this.call) return;
          this.awaitingDrain = false;
          this.flush();
        });
        return;
      }
    }
  }

  private teardownCall(): void {
    this.clearTimer();
    const call = this.call;
    const client = this.client;
    this.call = undefined;
    this.client = undefined;
    this.awaitingDrain = false;
    if (call !== undefined) call.cancel();
    if (client !== undefined) client.close();
  }

  private clearTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}
