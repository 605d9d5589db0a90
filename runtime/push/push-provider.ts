/**
 * The push seam: how a notification for an offline user leaves Parley. The notifier (which
 * decides, queues, coalesces and retries) knows only this interface; each way out (Web Push to a
 * browser or FCM's Web Push endpoint, an operator's webhook) implements it.
 *
 * Guarantees a provider gives: `send` never throws for a failure of the far side; it answers
 * with an outcome that says whether to retry, and whether the subscription is gone for good
 * (404/410 from a push service), so the notifier can drop it. It never retries by itself.
 *
 * Example:
 *   const outcome = await webPush.send({ userId, deviceIds: ['phone'], notificationId, subscription }, payload);
 *   if (!outcome.ok && outcome.gone) await forget(subscription);
 */

/** A browser's (or FCM's) Web Push subscription, as `PUT /v1/devices/{device_id}/push` takes it. */
export interface WebPushSubscription {
  readonly provider: 'webpush';
  readonly endpoint: string;
  readonly keys: { readonly p256dh: string; readonly auth: string };
}

/** What a notification says (the Web Push payload after decryption; the webhook body adds user_id and device_ids). */
export interface PushPayload {
  readonly type: 'message';
  readonly channel_id: string;
  readonly message_id: string;
  readonly sender_id: string;
  readonly sender_name: string;
  /** Unread messages across all the recipient's channels, by their read marks. */
  readonly unread_count: number;
  /** Only with --push-include-text. */
  readonly text?: string;
}

export interface PushTarget {
  readonly userId: string;
  /** The user's devices this notification is for (all of them that are offline). */
  readonly deviceIds: readonly string[];
  /**
   * The notification's stable id: the same on every attempt and from every node, so a receiver
   * told twice (a sender killed between the answer and its record) can drop the repeat.
   */
  readonly notificationId: string;
  /** For Web Push: the one subscription to send to. Absent for providers that take every notification (the webhook). */
  readonly subscription?: WebPushSubscription;
}

export type PushOutcome =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /** Worth another attempt later (timeouts, 429, 5xx). */
      readonly retryable: boolean;
      /** The subscription no longer exists (404/410): remove it, never retry. */
      readonly gone: boolean;
      readonly status?: number;
      readonly error: string;
    };

export interface PushProvider {
  /** 'webpush' or 'webhook'. */
  readonly name: string;
  send(target: PushTarget, payload: PushPayload): Promise<PushOutcome>;
}
