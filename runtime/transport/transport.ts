/** What an envelope asks of its receiver. */
export type EnvelopeKind = 'tell' | 'ask' | 'reply' | 'error';

/** One actor message crossing nodes. The transport never looks inside `payload`. */
export interface Envelope {
  kind: EnvelopeKind;
  /** Actor kind of the target. */
  targetKind: string;
  /** Actor key of the target. */
  targetKey: string;
  /** Pairs ask with reply/error; 0 for tell. Must stay below 2^53 to survive the wire exactly. */
  correlationId: number;
  /** Forwarding hops so far. */
  hops: number;
  /**
   * Opaque bytes serialised by the kernel. On the receiving side this is a view into the
   * received frame: copy it if it must outlive the handler call.
   */
  payload: Uint8Array;
  errorCode?: string;
  errorMessage?: string;
  /**
   * For `error`: a refusal (the request was wrong or not allowed) rather than a fault (something
   * broke). Absent or false: a fault, so an error from a peer that does not say is never taken
   * for a mere "no".
   */
  errorRefusal?: boolean;
  /** The node that created the envelope, which a forwarder keeps unchanged. */
  senderNode: string;
}

/**
 * Moves envelopes between nodes. Per peer, envelopes arrive in the order they were sent and at
 * most once; an envelope in flight when a link breaks may be lost, and the sender learns of the
 * break through `onPeerDown` (the kernel fails or retries its asks; the transport never resends).
 */
export interface Transport {
  /** Starts listening for inbound streams. */
  start(): Promise<void>;
  /**
   * Queues `env` for `nodeId` at `address` and returns at once; queued envelopes are written in
   * batches on a later turn of the event loop. Envelopes for a peer that is down stay queued
   * (bounded) and go out once a reconnect succeeds. Throws TransportError BACKPRESSURE when the
   * peer's queue is over its bound, STOPPED after `stop()`, and RangeError for an envelope that
   * cannot be encoded (a caller bug: correlationId not a safe non-negative integer, hops not a
   * uint32, unknown kind); nothing else.
   * A different address for a known node id replaces its link (the node moved or restarted).
   */
  send(nodeId: string, address: string, env: Envelope): void;
  /** The single receiver of inbound envelopes; `fromNode` is the peer the stream came from. */
  onEnvelope(handler: (env: Envelope, fromNode: string) => void): void;
  /** Called once per break: the link to `nodeId` failed and no reconnect has succeeded yet. */
  onPeerDown(handler: (nodeId: string) => void): void;
  /**
   * Forgets a peer (membership says it left): closes its link, stops reconnecting and discards
   * what was still queued for it. A later `send` to it starts afresh.
   */
  dropPeer(nodeId: string): void;
  /** Closes every link and the listener. Queued envelopes are discarded. */
  stop(): Promise<void>;
}
