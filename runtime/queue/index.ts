/**
 * Durable delayed job queues shared by a cluster's nodes, knowing nothing of what a job does:
 * producers queue jobs due at a time, any node's worker claims due ones under a lease (one holder
 * at a time; a dead holder's jobs are taken over once its lease lapses, with the work it recorded),
 * and jobs given up on become dead letters an operator can put back.
 *
 * - `job-queue.ts`: the seam (JobQueue for producers, JobWorker for workers, DeadJobs for
 *   operators) and what every implementation guarantees.
 * - `kv-job-queue.ts`: in the store's key-value tables (SQLite, Cassandra): lease chains
 *   created with putIfAbsent; due jobs found by scanning a few partitions.
 * - `redis-job-queue.ts`: a Redis stream with a consumer group (XREADGROUP, XACK, XAUTOCLAIM
 *   with min-idle = the lease), a sorted set for what is not due yet, one Lua script per step.
 *
 * Both pass one contract suite (test/queue/contract.ts).
 *
 * @example
 * ```ts
 * const queue = new RedisJobQueue({ url: 'redis://127.0.0.1:6379', name: 'push' });
 * await queue.put({ id: 'job-1', body: '{"to":"u1"}', dueMs: Date.now() + 10_000 });
 * for (const lease of await queue.claim(32)) {
 *   const ok = await work(lease.body);
 *   await (ok ? queue.finish(lease) : queue.defer(lease, Date.now() + 1_000, 'receiver answered 503'));
 * }
 * ```
 */
export type { DeadJob, DeadJobs, DurableJobQueue, JobLease, JobQueue, JobWorker, QueuedJob } from './job-queue.ts';
export { KvJobQueue, type KvJobQueueOptions } from './kv-job-queue.ts';
export { RedisJobQueue, type RedisJobQueueOptions } from './redis-job-queue.ts';
