import { deriveKey } from './signing-secret.ts';
import { TokenSigner, type TokenClaims } from './tokens.ts';

/**
 * Operator authority: the admin routes (actors/api/admin-api.ts) take a bearer token signed with
 * `deriveKey(secret, 'admin')`, the cluster's signing secret under its own purpose. Whoever holds
 * the secret (the data dir's `signing.secret`, the `--secret-file`, or etcd's `<prefix>/secret`)
 * is an operator; a user token, signed with the 'tokens' key, never verifies here and an admin
 * token never opens a user session. `parleyctl` mints one per run, valid for ADMIN_TOKEN_TTL_S,
 * so a token seen in a log or a proxy is worthless minutes later.
 */
export const ADMIN_SUBJECT = 'parleyctl';
export const ADMIN_TOKEN_TTL_S = 300;

export class AdminTokens {
  private readonly signer: TokenSigner;

  constructor(secret: Buffer) {
    this.signer = new TokenSigner(deriveKey(secret, 'admin'), ADMIN_TOKEN_TTL_S);
  }

  mint(nowMs = Date.now()): string {
    return this.signer.issue(ADMIN_SUBJECT, nowMs).token;
  }

  /** The claims of a valid operator token, or undefined. */
  verify(token: string, nowMs = Date.now()): TokenClaims | undefined {
    const claims = this.signer.verify(token, nowMs);
    return claims?.sub === ADMIN_SUBJECT ? claims : undefined;
  }
}
