import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The token-signing secret: from a file when one is configured, else created once in the data
 * dir (mode 0600) and reused, so tokens survive a restart.
 */
export function loadSigningSecret(options: { secretFile?: string; dataDir: string }): Buffer {
  if (options.secretFile) {
    const text = readFileSync(options.secretFile, 'utf8').trim();
    if (text.length < 32) throw new Error(`secret file ${options.secretFile} must hold at least 32 characters`);
    return Buffer.from(text, 'utf8');
  }
  mkdirSync(options.dataDir, { recursive: true });
  const path = join(options.dataDir, 'signing.secret');
  try {
    return Buffer.from(readFileSync(path, 'utf8').trim(), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const secret = randomBytes(48).toString('base64url');
  try {
    // 'wx' fails if another process created it first; then we use theirs.
    writeFileSync(path, secret + '\n', { mode: 0o600, flag: 'wx' });
    return Buffer.from(secret, 'utf8');
  } catch {
    return Buffer.from(readFileSync(path, 'utf8').trim(), 'utf8');
  }
}

/**
 * One key per purpose from the one secret (HMAC-SHA256(secret, "parley/<purpose>")), so the token
 * key never doubles as the cluster key. Every node and `parleyctl` sign tokens with
 * `deriveKey(secret, 'tokens')`, single node or cluster alike; operator requests carry a token
 * signed with `deriveKey(secret, 'admin')` (actors/auth/admin-token.ts), which no user token verifies under.
 */
export function deriveKey(secret: Buffer, purpose: 'tokens' | 'cluster' | 'admin'): Buffer {
  return createHmac('sha256', secret).update(`parley/${purpose}`).digest();
}
