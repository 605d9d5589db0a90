/**
 * Ways a notification leaves the node, knowing nothing of who decided to send it or why.
 *
 * - `push-provider.ts`: the seam. A provider turns (target, payload) into one delivery attempt
 *   and answers with an outcome (ok, retryable, gone); it never retries by itself.
 * - `webhook-provider.ts`: an operator's HTTP endpoint, every notification, HMAC-signed.
 *
 * Guarantees: `send` never throws for a failure of the far side, and is bounded in time.
 *
 * @example
 * ```ts
 * const hook = new WebhookProvider({ url: 'https://ops.example/push', secret });
 * const outcome = await hook.send({ userId, deviceIds: ['phone'], notificationId }, payload);
 * if (!outcome.ok && outcome.retryable) scheduleRetry();
 * ```
 */
export type { PushOutcome, PushPayload, PushProvider, PushTarget, WebPushSubscription } from './push-provider.ts';
export { WebhookProvider, type WebhookBody, type WebhookProviderOptions } from './webhook-provider.ts';
