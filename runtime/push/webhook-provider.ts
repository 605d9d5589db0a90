import { createHmac } from 'node:crypto';
import { CodedError, RuntimeCodes } from '../errors.ts';
import type { PushOutcome, PushPayload, PushProvider, PushTarget } from './push-provider.ts';

export interface WebhookProviderOptions {
  /** http: or https: URL the notifications are POSTed to. */
  readonly url: string;
  /** HMAC-SHA256 key for X-Parley-Signature; required, so the receiver can tell us from anyone. */
  readonly secret: string;
  /** Per request, connect to last byte (default 5 s): a hung receiver must not hold a job's lease. */
  readonly timeoutMs?: number;
}

/** The body the receiver gets: the payload plus who it is for and which notification it is. */
export interface WebhookBody extends PushPayload {
  readonly user_id: string;
  readonly device_ids: readonly string[];
  /** Stable per notification (retries, another node, an operator's retry): a receiver dedupes on it. */
  readonly notification_id: string;
}

/**
 * An operator's webhook: every notification, as JSON, signed with
 * `X-Parley-Signature: sha256=<lowercase hex HMAC-SHA256 of the body bytes>`. The operator
 * bridges it to APNs, FCM or anything else. The receiver must check the signature over the raw
 * body before parsing it (a re-serialised body need not match byte for byte).
 *
 * Outcomes: 2xx ok; 429, 5xx, timeouts and network errors retryable; any other status (a 4xx:
 * the receiver refuses this body) is final. A webhook has no subscription to lose: never `gone`.
 */
export class WebhookProvider implements PushProvider {
  readonly name = 'webhook';
  private readonly url: URL;
  private readonly secret: string;
  private readonly timeoutMs: number;

  constructor(o: WebhookProviderOptions) {
    // Checked at start (bin/node-assembly.ts builds this before serving): bad config never waits for the first offline message.
    let url: URL;
    try {
      url = new URL(o.url);
    } catch {
      throw new CodedError(RuntimeCodes.CONFIG, `--push-webhook must be an http(s) URL, got ${JSON.stringify(o.url)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CodedError(RuntimeCodes.CONFIG, `--push-webhook must be an http: or https: URL, got ${url.protocol}`);
    if (!o.secret) throw new CodedError(RuntimeCodes.CONFIG, '--push-webhook needs --push-webhook-secret: the receiver checks X-Parley-Signature with it');
    this.url = url;
    this.secret = o.secret;
    this.timeoutMs = o.timeoutMs ?? 5_000;
  }

  /** The signature header's value for these exact body bytes. */
  static sign(secret: string, body: string | Uint8Array): string {
    return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
  }

  async send(target: PushTarget, payload: PushPayload): Promise<PushOutcome> {
    const body = JSON.stringify({ ...payload, user_id: target.userId, device_ids: target.deviceIds, notification_id: target.notificationId } satisfies WebhookBody);
    let status: number;
    try {
      const res = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-parley-signature': WebhookProvider.sign(this.secret, body) },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'manual',
      });
      status = res.status;
      // Drain it so the connection can be reused; the content does not matter.
      await res.arrayBuffer().catch(() => undefined);
    } catch (err) {
      return { ok: false, retryable: true, gone: false, error: `webhook unreachable: ${err instanceof Error ? err.message : String(err)}` };
    }
    if (status >= 200 && status < 300) return { ok: true };
    const retryable = status === 429 || status >= 500;
    return { ok: false, retryable, gone: false, status, error: `webhook answered ${status}` };
  }
}
