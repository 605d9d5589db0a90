/**
 * A Web Push service and the browsers behind it, in the test process: an HTTP server on
 * 127.0.0.1 that takes RFC 8030 deliveries the way a real push service does, and subscriptions
 * made the way a browser makes them (a fresh P-256 key pair and a 16-byte auth secret each).
 *
 * For each POST it checks, independently of Parley's code (only node:crypto):
 * - VAPID (RFC 8292): `Authorization: vapid t=JWT, k=KEY`; the JWT is ES256, verified with `k`;
 *   `aud` is this server's origin; `exp` is in the future and at most 24 h away. A subscription
 *   made with an `applicationServerKey` accepts only that `k` (403 otherwise, as push services do).
 * - `Content-Encoding: aes128gcm`, a `TTL` header;
 * - the body decrypts (RFC 8291) with the subscription's private key and auth secret, and the
 *   plaintext is JSON.
 * A request that fails a check gets 400 (403 for a foreign key) and lands in `rejected`; one that
 * passes is answered with the status set for it (default 201) and, when that is 2xx, lands in
 * `received`.
 *
 * Example:
 *   const push = await startWebPushReceiver();
 *   const sub = push.subscription({ applicationServerKey: key });
 *   await http.registerPush('phone', sub);     // sub has endpoint and keys, like toJSON()
 *   // ... a message arrives while 'phone' is offline ...
 *   t.true(await eventually(() => push.received.length === 1));
 *   t.is(push.received[0]!.payload.type, 'message');
 *   push.setStatus(410, sub.endpoint);         // the browser unsubscribed
 *   await push.close();
 */
import { createDecipheriv, createECDH, createPublicKey, hkdfSync, randomBytes, randomUUID, verify, type ECDH } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { scalar32 } from '../../runtime/push/vapid.ts';

/** What a browser's `PushSubscription.toJSON()` gives, plus what only the browser knows. */
export interface TestSubscription {
  readonly provider: 'webpush';
  readonly endpoint: string;
  readonly keys: { readonly p256dh: string; readonly auth: string };
  /** The private half of p256dh (the scalar, base64url); stays in the "browser". */
  readonly privateKey: string;
}

export interface ReceivedPush {
  /** The endpoint it was posted to. */
  readonly endpoint: string;
  /** The decrypted body, parsed as JSON (a PushPayload when Parley sent it). */
  readonly payload: Record<string, unknown>;
  /** The VAPID `k` and the JWT claims it carried. */
  readonly vapidKey: string;
  readonly claims: { readonly aud: string; readonly exp: number; readonly sub?: string };
  readonly headers: { readonly ttl: string; readonly urgency?: string; readonly topic?: string };
  readonly atMs: number;
}

export interface RejectedPush {
  readonly endpoint: string;
  readonly status: number;
  readonly reason: string;
}

export interface WebPushReceiver {
  /** `http://127.0.0.1:PORT`: the VAPID audience Parley must sign for. */
  readonly origin: string;
  /** A new browser subscription at this service; with a key, bound to it (RFC 8292 section 3). */
  subscription(options?: { applicationServerKey?: string }): TestSubscription;
  /** Deliveries that passed every check and were answered 2xx, in arrival order. */
  readonly received: ReceivedPush[];
  /** Deliveries that failed a check. */
  readonly rejected: RejectedPush[];
  /** Every POST seen, checked or not, passed or not. */
  readonly requests: number;
  /** The status to answer with (after the checks): for one endpoint, or for all without one. `undefined` resets. */
  setStatus(code: number | undefined, endpoint?: string): void;
  /** Hold every answer this long (to test the sender's timeout); 0 answers at once. */
  setDelayMs(ms: number): void;
  close(): Promise<void>;
}

interface Sub {
  readonly ecdh: ECDH;
  readonly auth: Buffer;
  readonly serverKey?: string;
}

export async function startWebPushReceiver(): Promise<WebPushReceiver> {
  const subs = new Map<string, Sub>();
  const statusFor = new Map<string, number>();
  let statusAll: number | undefined;
  let delayMs = 0;
  let requests = 0;
  const received: ReceivedPush[] = [];
  const rejected: RejectedPush[] = [];
  const open = new Set<ServerResponse>();

  const server = createServer((req, res) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    if (req.method !== 'POST') return void res.writeHead(405).end();
    requests++;
    const endpoint = origin + (req.url ?? '');
    const answer = (status: number, text = ''): void => {
      const send = (): void => void res.writeHead(status, { 'content-type': 'text/plain' }).end(text);
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    };
    const refuse = (status: number, reason: string): void => {
      rejected.push({ endpoint, status, reason });
      answer(status, reason);
    };
    const sub = subs.get(endpoint);
    if (!sub) return refuse(404, 'no such subscription');

    const m = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(req.headers.authorization ?? '');
    if (!m) return refuse(400, `Authorization is not "vapid t=..., k=...": ${req.headers.authorization}`);
    const [, jwt, k] = m as unknown as [string, string, string];
    const claims = verifyVapidJwt(jwt, k, origin);
    if (typeof claims === 'string') return refuse(400, claims);
    if (sub.serverKey !== undefined && sub.serverKey !== k) return refuse(403, 'VAPID key differs from the applicationServerKey of the subscription');
    if (req.headers['content-encoding'] !== 'aes128gcm') return refuse(400, `Content-Encoding is ${req.headers['content-encoding']}`);
    const ttl = req.headers.ttl;
    if (typeof ttl !== 'string' || !/^\d+$/.test(ttl)) return refuse(400, 'TTL header missing or not a number');
    let payload: Record<string, unknown>;
    try {
      payload = JSON.parse(decryptAes128gcm(body, sub.ecdh, sub.auth).toString('utf8')) as Record<string, unknown>;
    } catch (err) {
      return refuse(400, `body does not decrypt to JSON: ${(err as Error).message}`);
    }
    const status = statusFor.get(endpoint) ?? statusAll ?? 201;
    if (status >= 200 && status < 300) {
      const urgency = req.headers.urgency as string | undefined;
      const topic = req.headers.topic as string | undefined;
      received.push({ endpoint, payload, vapidKey: k, claims, headers: { ttl, ...(urgency ? { urgency } : {}), ...(topic ? { topic } : {}) }, atMs: Date.now() });
    }
    answer(status, status >= 300 ? `status ${status} as set by the test` : '');
  }

  return {
    origin,
    received,
    rejected,
    get requests() {
      return requests;
    },
    subscription(options = {}) {
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const auth = randomBytes(16);
      const endpoint = `${origin}/push/${randomUUID()}`;
      subs.set(endpoint, { ecdh, auth, ...(options.applicationServerKey ? { serverKey: options.applicationServerKey } : {}) });
      return {
        provider: 'webpush',
        endpoint,
        keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') },
        privateKey: scalar32(ecdh.getPrivateKey()).toString('base64url'),
      };
    },
    setStatus(code, endpoint) {
      if (endpoint === undefined) statusAll = code;
      else if (code === undefined) statusFor.delete(endpoint);
      else statusFor.set(endpoint, code);
    },
    setDelayMs(ms) {
      delayMs = ms;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of open) res.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The JWT's claims when it is a valid VAPID token for `audience` signed by `k`; otherwise why not. */
export function verifyVapidJwt(jwt: string, k: string, audience: string, nowMs = Date.now()): { aud: string; exp: number; sub?: string } | string {
  const parts = jwt.split('.');
  if (parts.length !== 3) return 'JWT must have three parts';
  const [h, c, s] = parts as [string, string, string];
  let header: { alg?: string; typ?: string };
  let claims: { aud?: unknown; exp?: unknown; sub?: unknown };
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as typeof header;
    claims = JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) as typeof claims;
  } catch {
    return 'JWT header or claims are not JSON';
  }
  if (header.alg !== 'ES256') return `JWT alg is ${header.alg}, not ES256`;
  const point = Buffer.from(k, 'base64url');
  if (point.length !== 65 || point[0] !== 4) return 'k is not an uncompressed P-256 point';
  let ok: boolean;
  try {
    const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') }, format: 'jwk' });
    ok = verify('sha256', Buffer.from(`${h}.${c}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
  } catch (err) {
    return `k is not a usable key: ${(err as Error).message}`;
  }
  if (!ok) return 'JWT signature does not verify with k';
  if (claims.aud !== audience) return `JWT aud is ${String(claims.aud)}, not ${audience}`;
  const nowS = nowMs / 1000;
  if (typeof claims.exp !== 'number' || claims.exp <= nowS) return 'JWT exp is missing or past';
  if (claims.exp > nowS + 24 * 3600) return 'JWT exp is more than 24 h away';
  if (claims.sub !== undefined && typeof claims.sub !== 'string') return 'JWT sub is not a string';
  return { aud: claims.aud, exp: claims.exp, ...(typeof claims.sub === 'string' ? { sub: claims.sub } : {}) };
}

/**
 * The browser's side of RFC 8291: the plaintext of an aes128gcm body, given the subscription's
 * private key and auth secret. Throws when anything does not add up.
 */
export function decryptAes128gcm(body: Buffer, ua: ECDH, authSecret: Buffer): Buffer {
  if (body.length < 21) throw new Error('body shorter than the header');
  const salt = body.subarray(0, 16);
  const rs = body.readUInt32BE(16);
  const idlen = body[20]!;
  const keyid = body.subarray(21, 21 + idlen);
  if (idlen !== 65) throw new Error(`keyid is ${idlen} bytes, not a 65-byte P-256 key`);
  const records = body.subarray(21 + idlen);
  // Web Push is one record: the whole ciphertext must fit the record size.
  if (records.length > rs || records.length < 17) throw new Error(`ciphertext of ${records.length} bytes does not make one record of at most ${rs}`);
  const uaPublic = ua.getPublicKey();
  const ecdhSecret = ua.computeSecret(keyid);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, keyid]);
  const ikm = Buffer.from(hkdfSync('sha256', ecdhSecret, authSecret, keyInfo, 32));
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(records.subarray(records.length - 16));
  const padded = Buffer.concat([decipher.update(records.subarray(0, records.length - 16)), decipher.final()]);
  // Strip padding: zeros after the delimiter, which must be 0x02 (the last record).
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  if (end < 0 || padded[end] !== 2) throw new Error('last record lacks the 0x02 delimiter');
  return padded.subarray(0, end);
}

/** The "browser" key of a TestSubscription, to decrypt bodies outside the receiver. */
export function subscriptionKey(sub: TestSubscription): ECDH {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(Buffer.from(sub.privateKey, 'base64url'));
  return ecdh;
}
