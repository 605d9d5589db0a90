/**
 * Inter-node transport: moves actor envelopes (opaque payload bytes plus routing fields)
 * between the nodes of a cluster.
 *
 * Guarantees, per pair of nodes: FIFO order; at most once (nothing is resent, an envelope in
 * flight when a link breaks may be lost and `onPeerDown` says so); `send` never blocks and
 * batches everything queued in one event-loop turn into one write; each per-peer queue is
 * bounded and overflow is a synchronous TransportError BACKPRESSURE, never unbounded memory;
 * broken links reconnect with capped, jittered exponential backoff; every gRPC stream must
 * carry the cluster secret (compared in constant time) or is refused with UNAUTHENTICATED
 * before any envelope is read.
 *
 * @example
 * ```ts
 * const t = new GrpcTransport({ nodeId: 'n1', listenAddress: '0.0.0.0:7000', clusterSecret });
 * t.onEnvelope((env, fromNode) => kernel.deliver(env, fromNode));
 * t.onPeerDown((nodeId) => kernel.failPendingAsks(nodeId));
 * await t.start();
 * t.send('n2', '10.0.0.2:7000', { kind: 'tell', targetKind: 'counter', targetKey: 'k1',
 *   correlationId: 0, hops: 0, payload, senderNode: 'n1' });
 * ```
 * Tests use `LocalTransport` over a shared `LocalNetwork`, which behaves the same in-process.
 */
export type { Envelope, EnvelopeKind, Transport } from './transport.ts';
export { TransportError, TransportErrorCodes, type TransportErrorCode } from './transport-error.ts';
export { GrpcTransport, type GrpcTransportOptions } from './grpc-transport.ts';
export { LocalNetwork, LocalTransport, type LocalTransportOptions } from './local-transport.ts';
export { DEFAULT_BACKOFF, backoffDelay, type BackoffPolicy } from './reconnect-backoff.ts';
export { encodeBatch, decodeBatch, validateEnvelope } from './envelope-codec.ts';
