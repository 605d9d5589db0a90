import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Signed, expiring session tokens: `v1.<payload>.<signature>`, base64url, HMAC-SHA256 over the
 * payload with the cluster's signing secret. Any node verifies one with no database read; a
 * logged-out session is refused by its id (`sid`) through the node's in-memory revocation set
 * (actors/auth/revocations.ts), also without a read.
 */
export interface TokenClaims {
  /** User id. */
  readonly sub: string;
  /**
   * The login session: set at login, kept by every refresh of its tokens. Logout revokes it, so
   * every token of that login is refused, including older ones a socket may still run on.
   */
  readonly sid: string;
  /** This token: random, so every login and every refresh mints a distinct token. */
  readonly jti: string;
  /** Issued at, seconds since the epoch. */
  readonly iat: number;
  /** Expiry, seconds since the epoch. */
  readonly exp: number;
}

export interface IssuedToken {
  readonly token: string;
  readonly claims: TokenClaims;
  readonly expiresAtMs: number;
}

/**
 * The longest token lifetime signed or accepted (30 days). Bounding it bounds how long a
 * logout must be remembered, and so what a starting node loads.
 */
export const MAX_TOKEN_TTL_S = 30 * 86_400;
const MAX_ID_LENGTH = 64;

/** A fresh random id for `sid` or `jti` (128 bits). */
export function newTokenId(): string {
  return randomBytes(16).toString('base64url');
}

export class TokenSigner {
  private readonly key: Buffer;

  constructor(
    secret: string | Buffer,
    readonly ttlSeconds: number,
  ) {
    this.key = Buffer.isBuffer(secret) ? secret : Buffer.from(secret, 'utf8');
    if (this.key.length < 32) throw new RangeError('token signing secret must be at least 32 bytes');
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TOKEN_TTL_S) {
      throw new RangeError(`token lifetime must be 1-${MAX_TOKEN_TTL_S} s, not ${ttlSeconds}`);
    }
  }

  /** A new token for `userId`: of a new login session, or of `sid` when refreshing one. */
  issue(userId: string, nowMs = Date.now(), sid: string = newTokenId()): IssuedToken {
    const iat = Math.floor(nowMs / 1000);
    const claims: TokenClaims = { sub: userId, sid, jti: newTokenId(), iat, exp: iat + this.ttlSeconds };
    return { token: this.sign(claims), claims, expiresAtMs: claims.exp * 1000 };
  }

  /** Signs explicit claims (admin tooling mints tokens for provisioned users this way). */
  sign(claims: TokenClaims): string {
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `v1.${payload}.${this.mac(payload)}`;
  }

  /**
   * The claims of a valid, unexpired token; undefined for anything else. Not whether it was
   * logged out: that is the caller's check against the revocation set.
   */
  verify(token: string, nowMs = Date.now()): TokenClaims | undefined {
    if (typeof token !== 'string' || token.length > 2048) return undefined;
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== 'v1') return undefined;
    const expected = Buffer.from(this.mac(parts[1]!));
    const given = Buffer.from(parts[2]!);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
    let claims: unknown;
    try {
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    if (!isClaims(claims) || claims.exp * 1000 <= nowMs || claims.exp - claims.iat > MAX_TOKEN_TTL_S) return undefined;
    if (claims.sid !== undefined && claims.jti !== undefined) return claims as TokenClaims;
    // Minted before tokens carried ids: the signature names that one token, so a logout with it
    // revokes exactly it (and the tokens refreshed from it, which inherit this sid).
    const own = `sig:${parts[2]!.slice(0, 22)}`;
    return { sub: claims.sub, iat: claims.iat, exp: claims.exp, sid: claims.sid ?? own, jti: claims.jti ?? own };
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('base64url');
  }
}

type WireClaims = Omit<TokenClaims, 'sid' | 'jti'> & { readonly sid?: string; readonly jti?: string };

function isClaims(v: unknown): v is WireClaims {
  const c = v as WireClaims;
  const id = (x: unknown): boolean => x === undefined || (typeof x === 'string' && x.length > 0 && x.length <= MAX_ID_LENGTH);
  return typeof c === 'object' && c !== null && typeof c.sub === 'string' && typeof c.exp === 'number' && typeof c.iat === 'number' && id(c.sid) && id(c.jti);
}
