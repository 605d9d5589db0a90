import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signed, expiring session tokens: `v1.<payload>.<signature>`, base64url, HMAC-SHA256 over the
 * payload with the cluster's signing secret. Any node verifies one with no database read.
 */
export interface TokenClaims {
  /** User id. */
  readonly sub: string;
  /** Expiry, seconds since the epoch. */
  readonly exp: number;
  readonly iat: number;
}

export class TokenSigner {
  private readonly key: Buffer;

  constructor(
    secret: string | Buffer,
    private readonly ttlSeconds: number,
  ) {
    this.key = Buffer.isBuffer(secret) ? secret : Buffer.from(secret, 'utf8');
    if (this.key.length < 32) throw new RangeError('token signing secret must be at least 32 bytes');
  }

  issue(userId: string, nowMs = Date.now()): string {
    const iat = Math.floor(nowMs / 1000);
    return this.sign({ sub: userId, iat, exp: iat + this.ttlSeconds });
  }

  /** Signs explicit claims (admin tooling mints tokens for provisioned users this way). */
  sign(claims: TokenClaims): string {
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `v1.${payload}.${this.mac(payload)}`;
  }

  /** The claims of a valid, unexpired token; undefined for anything else. */
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
    if (!isClaims(claims) || claims.exp * 1000 <= nowMs) return undefined;
    return claims;
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('base64url');
  }
}

function isClaims(v: unknown): v is TokenClaims {
  const c = v as TokenClaims;
  return typeof c === 'object' && c !== null && typeof c.sub === 'string' && typeof c.exp === 'number' && typeof c.iat === 'number';
}
