/**
 * Push notifications for offline users: the queue and the notifier that drains it.
 *
 * - Deciding is the user actor's (actors/user/push-decider.ts): once per inbox entry, when no
 *   device is online, it writes a job (coalesced: one per user per `push_coalesce_ms`).
 * - `push-jobs.ts`: a job as queued (runtime/queue: the store's tables, or Redis with --redis),
 *   the notification id receivers see, dead letters for `parleyctl push dead-letters`.
 * - `notifier.ts`: on every node, claims due jobs from the queue (one node per job), builds the
 *   payload (unread count summed over the user's channels, the sender's display name), sends it
 *   through every PushProvider (runtime/push), retries with backoff, dead-letters.
 *
 * Guarantees: a job is decided once, stored before it is sent, sent by one node at a time and
 * recorded as sent once; a node killed mid-queue loses nothing (its claims lapse). A provider
 * target can be told twice only if a node dies between its answer and the record of it, and then
 * with the same `notification_id`.
 *
 * @example
 * ```ts
 * const queue = new KvJobQueue(store.kv, { name: PUSH_QUEUE });
 * const notifier = new Notifier({ deps, providers: [webhook], queue, coalesceMs: 10_000, maxAttempts: 8, log });
 * notifier.start();
 * ```
 */
export { NO_SUBSCRIPTIONS, Notifier, backoff, type NotifierOptions, type SubscriptionSource } from './notifier.ts';
export { PUSH_QUEUE, listDeadLetters, notificationIdOf, retryDeadLetters, type DeadLetter, type PushJob } from './push-jobs.ts';
