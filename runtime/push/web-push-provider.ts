/**
 * The Web Push way out (provider name 'webpush'): one HTTP POST per notification to the
 * subscription's endpoint at its push service (RFC 8030), the payload encrypted to the browser
 * (RFC 8291, aes128gcm) and the request signed with the cluster's VAPID key (RFC 8292). Works
 * with every browser's push service (FCM for Chrome, Mozilla's, Apple's, Microsoft's).
 *
 * Guarantees (the PushProvider seam): `send` never throws for the far side; each request is
 * bounded by `timeoutMs` (connect, headers and body together); redirects are not followed; the
 * outcome says retry or not, and `gone` for 404/410. It never retries by itself.
 *
 * Example:
 *   const webPush = new WebPushProvider({ vapid: keys, subject: 'mailto:ops@example.com' });
 *   const outcome = await webPush.send({ userId, deviceIds: [deviceId], notificationId, subscription }, payload);
 */
import { createHash } from 'node:crypto';
import { endpointProblem } from './push-endpoint.ts';
import type { PushOutcome, PushPayload, PushProvider, PushTarget } from './push-provider.ts';
import { VapidSigner, type VapidKeys } from './vapid.ts';
import { encryptAes128gcm, isP256Point, MAX_WEB_PUSH_PLAINTEXT_BYTES } from './web-push-encryption.ts';

export interface WebPushProviderOptions {
  readonly vapid: VapidKeys;
  /** The VAPID `sub` contact (`mailto:` or `https:`); absent: none sent (Apple's service wants one). */
  readonly subject?: string;
  /** Whole-request bound, ms (default 10,000). */
  readonly timeoutMs?: number;
  /** How long the push service keeps an undelivered message, seconds (default 86,400). */
  readonly ttlSeconds?: number;
  /** Allow `http:` endpoints on loopback (tests, a local push service). */
  readonly allowInsecure?: boolean;
}

/** Enough of an error response to say what went wrong, without reading a large body. */
const MAX_ERROR_BODY_CHARS = 512;

export class WebPushProvider implements PushProvider {
  readonly name = 'webpush';
  private readonly vapid: VapidSigner;
  private readonly timeoutMs: number;
  private readonly ttlSeconds: number;
  private readonly allowInsecure: boolean;

  constructor(o: WebPushProviderOptions) {
    this.vapid = new VapidSigner(o.vapid, o.subject);
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.ttlSeconds = o.ttlSeconds ?? 86_400;
    this.allowInsecure = o.allowInsecure ?? false;
  }

  /** The public key browsers subscribe with (`applicationServerKey`), base64url. */
  get publicKey(): string {
    return this.vapid.keys.publicKey;
  }

  async send(target: PushTarget, payload: PushPayload): Promise<PushOutcome> {
    const sub = target.subscription;
    if (!sub || sub.provider !== 'webpush') return refused('no Web Push subscription in the target');
    const problem = endpointProblem(sub.endpoint, this.allowInsecure);
    if (problem) return refused(problem);
    const uaPublic = Buffer.from(sub.keys.p256dh, 'base64url');
    const authSecret = Buffer.from(sub.keys.auth, 'base64url');
    if (!isP256Point(uaPublic) || authSecret.length !== 16) return refused('subscription keys are malformed');
    const plaintext = fitPayload(payload);
    if (!plaintext) return refused(`payload exceeds ${MAX_WEB_PUSH_PLAINTEXT_BYTES} bytes even without text`);

    let res: Response;
    try {
      const signal = AbortSignal.timeout(this.timeoutMs);
      res = await fetch(sub.endpoint, {
        method: 'POST',
        redirect: 'manual',
        signal,
        headers: {
          authorization: this.vapid.authorization(new URL(sub.endpoint).origin),
          'content-encoding': 'aes128gcm',
          'content-type': 'application/octet-stream',
          ttl: String(this.ttlSeconds),
          urgency: 'high',
          // A push service keeps only the latest undelivered message of a topic: a phone that was
          // offline gets one notification per channel, not one per message.
          topic: topicOf(payload.channel_id),
        },
        body: encryptAes128gcm({ plaintext, uaPublic, authSecret }),
      });
    } catch (err) {
      // Network failures, refused connections, timeouts: the push service may be fine in a moment.
      const name = (err as { name?: string }).name;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : (cause?.code ?? cause?.message ?? (err as Error).message);
      return { ok: false, retryable: true, gone: false, error: `push service unreachable: ${why}` };
    }
    // The status decides; the body only explains a failure, and failing to read it changes nothing.
    const body = await readSome(res, res.ok ? 0 : MAX_ERROR_BODY_CHARS).catch(() => '');
    return outcomeOf(res.status, body);
  }
}

/** RFC 8030 answers, mapped onto the seam's outcome. */
export function outcomeOf(status: number, body = ''): PushOutcome {
  if (status >= 200 && status < 300) return { ok: true };
  const error = `push service answered ${status}${body ? `: ${body}` : ''}`;
  // 404/410: the subscription expired or was unsubscribed; it will never work again.
  if (status === 404 || status === 410) return { ok: false, retryable: false, gone: true, status, error };
  // 429 (rate limited) and 5xx are the service's transient state; the same request may pass later.
  if (status === 429 || status >= 500) return { ok: false, retryable: true, gone: false, status, error };
  // Other 4xx (bad VAPID, payload too large, malformed) and 3xx: the same request fails again.
  return { ok: false, retryable: false, gone: false, status, error };
}

function refused(error: string): PushOutcome {
  return { ok: false, retryable: false, gone: false, error };
}

/** RFC 8030 section 5.4: at most 32 characters of the base64url alphabet. */
function topicOf(channelId: string): string {
  return createHash('sha256').update(channelId).digest('base64url').slice(0, 32);
}

/**
 * The payload as JSON bytes within one Web Push record. Only `text` (with --push-include-text)
 * can make it too long; it is cut at a code point boundary and marked with an ellipsis, since a
 * notification shows a preview, not the message.
 */
export function fitPayload(payload: PushPayload): Buffer | undefined {
  const whole = Buffer.from(JSON.stringify(payload));
  if (whole.length <= MAX_WEB_PUSH_PLAINTEXT_BYTES) return whole;
  if (payload.text === undefined) return undefined;
  const points = [...payload.text];
  let lo = 0;
  let hi = points.length - 1;
  let best: Buffer | undefined;
  // The longest prefix that fits; JSON escaping makes the size per code point vary.
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const bytes = Buffer.from(JSON.stringify({ ...payload, text: `${points.slice(0, mid).join('')}…` }));
    if (bytes.length <= MAX_WEB_PUSH_PLAINTEXT_BYTES) {
      best = bytes;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return best;
}

/** Up to `max` characters of the body; the rest is dropped, which frees the connection. */
async function readSome(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, max).trim();
}
