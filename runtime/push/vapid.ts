/**
 * VAPID (RFC 8292): how an application server identifies itself to push services. A browser
 * subscribes with the server's public key (`applicationServerKey`); the push service then accepts
 * messages for that subscription only with a JWT signed by the matching private key.
 *
 * Keys are P-256, in the form browsers and the `web-push` tools use: the public key as the
 * uncompressed point (65 bytes, 0x04 || x || y) and the private key as the 32-byte scalar, both
 * base64url without padding. So keys can be moved between Parley and other Web Push servers.
 *
 * Example:
 *   const keys = generateVapidKeys();
 *   const vapid = new VapidSigner(keys, 'mailto:ops@example.com');
 *   headers.authorization = vapid.authorization('https://push.example.net');
 */
import { createECDH, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { isP256Point } from './web-push-encryption.ts';

export interface VapidKeys {
  /** Uncompressed P-256 point, base64url without padding (the `k=` parameter, `applicationServerKey`). */
  readonly publicKey: string;
  /** The private scalar (32 bytes), base64url without padding. */
  readonly privateKey: string;
}

/** A JWT lives at most 24 hours (RFC 8292 section 2); 12 leaves room for a push service's clock. */
export const VAPID_JWT_LIFETIME_S = 12 * 3600;
/** A cached JWT is replaced this long before it expires, so no request carries one about to lapse. */
const RENEW_BEFORE_S = 3600;
/** Audiences are push-service origins, a handful in practice; the cap bounds a flood of odd endpoints. */
const MAX_CACHED_AUDIENCES = 256;

export function generateVapidKeys(): VapidKeys {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  return { publicKey: ecdh.getPublicKey().toString('base64url'), privateKey: scalar32(ecdh.getPrivateKey()).toString('base64url') };
}

/**
 * The private scalar as exactly 32 bytes. `ECDH.getPrivateKey()` drops leading zero bytes (about
 * one key in 128 comes out shorter), and a JWK `d` must be the full 32: left-pad with zeros.
 */
export function scalar32(scalar: Buffer): Buffer {
  if (scalar.length >= 32) return scalar;
  return Buffer.concat([Buffer.alloc(32 - scalar.length), scalar]);
}

/** Whether `keys` is a usable pair: the point is on the curve and is the private scalar's. */
export function isVapidKeys(keys: unknown): keys is VapidKeys {
  if (typeof keys !== 'object' || keys === null) return false;
  const { publicKey, privateKey } = keys as Record<string, unknown>;
  if (typeof publicKey !== 'string' || typeof privateKey !== 'string') return false;
  const pub = Buffer.from(publicKey, 'base64url');
  // A shorter scalar is a key stored before scalar32 padded them: the same number.
  const priv = Buffer.from(privateKey, 'base64url');
  if (!isP256Point(pub) || priv.length === 0 || priv.length > 32) return false;
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(priv);
    return ecdh.getPublicKey().equals(pub);
  } catch {
    return false;
  }
}

/** Signs VAPID JWTs with one key pair, caching one per audience while it is fresh. */
export class VapidSigner {
  private readonly key: KeyObject;
  private readonly cache = new Map<string, { readonly header: string; readonly expS: number }>();

  constructor(
    readonly keys: VapidKeys,
    /** The JWT `sub`: a `mailto:` or `https:` contact for the push service's operator; absent: no `sub`. */
    private readonly subject?: string,
  ) {
    if (!isVapidKeys(keys)) throw new TypeError('VAPID keys are not a P-256 key pair');
    const pub = Buffer.from(keys.publicKey, 'base64url');
    this.key = createPrivateKey({
      key: { kty: 'EC', crv: 'P-256', d: scalar32(Buffer.from(keys.privateKey, 'base64url')).toString('base64url'), x: pub.subarray(1, 33).toString('base64url'), y: pub.subarray(33).toString('base64url') },
      format: 'jwk',
    });
  }

  /** The `Authorization` header value for a request to `audience` (the endpoint's origin). */
  authorization(audience: string, nowMs = Date.now()): string {
    const nowS = Math.floor(nowMs / 1000);
    const cached = this.cache.get(audience);
    if (cached && cached.expS - RENEW_BEFORE_S > nowS) return cached.header;
    const expS = nowS + VAPID_JWT_LIFETIME_S;
    const header = `vapid t=${this.jwt(audience, expS)}, k=${this.keys.publicKey}`;
    if (this.cache.size >= MAX_CACHED_AUDIENCES) this.cache.clear();
    this.cache.set(audience, { header, expS });
    return header;
  }

  private jwt(aud: string, exp: number): string {
    const enc = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = this.subject === undefined ? { aud, exp } : { aud, exp, sub: this.subject };
    const input = `${enc({ typ: 'JWT', alg: 'ES256' })}.${enc(claims)}`;
    // JWS wants r || s (64 bytes), not DER.
    const signature = sign('sha256', Buffer.from(input), { key: this.key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  }
}

/** Whether `subject` is an acceptable JWT `sub`: a `mailto:` address or an `https:` URL (RFC 8292 section 2.1). */
export function isVapidSubject(subject: string): boolean {
  if (/^mailto:[^@\s]+@[^@\s]+$/.test(subject)) return true;
  try {
    return new URL(subject).protocol === 'https:';
  } catch {
    return false;
  }
}
