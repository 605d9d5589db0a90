/**
 * The Parley runtime: a virtual-actor kernel and what it stands on, knowing nothing of chat.
 *
 * - `actor/`: actors addressed by (kind, key), one message at a time, bounded mailboxes, timers,
 *   restart from persisted state, passivation.
 * - `storage/`: per-actor journals with owner-epoch fencing and dedup keys, plus a small
 *   key-value store; SQLite embedded, networked engines behind the same interfaces.
 * - `gateway/`: HTTP and WebSocket on native uWebSockets.js.
 * - `limits/`: token buckets; a failure throttle (per-key failures, growing blocks, bounded
 *   memory); a work gate (bounded concurrency with a bounded, time-aware queue).
 * - `queue/`: durable delayed job queues shared by the nodes (the store's tables, or a Redis
 *   stream with a consumer group), leased to one worker at a time, with dead letters.
 * - `metrics/`: the node's Prometheus registry (`GET /metrics`), hot-path-cheap counters and
 *   histograms, the kernel's figures (actors, mailboxes, connections, store calls, peer queues).
 *
 * Nothing under runtime/ imports from actors/, bin/ or client/.
 *
 * @example
 * ```ts
 * const system = new ActorSystem({ log: createLogger() });
 * system.register({ name: 'echo', create: () => ({ receive: (m) => m }) });
 * await system.ref('echo', 'a').ask('hi'); // 'hi'
 * ```
 */
export * from './actor/index.ts';
export * from './storage/index.ts';
export * from './gateway/index.ts';
export { CodedError, Rejection, RuntimeCodes, codeOf, isCoded } from './errors.ts';
export { createLogger, silentLogger, type Logger } from './log.ts';
export { KeyedRateLimiter, TokenBucket } from './limits/token-bucket.ts';
export { FailureThrottle, type Admission, type FailureRecord, type FailureThrottleLimits } from './limits/failure-throttle.ts';
export { WorkGate, type WorkGateLimits } from './limits/work-gate.ts';
export { FastCounter, FastHistogram, NodeMetrics, instrumentStore, registerRuntimeMetrics } from './metrics/index.ts';
