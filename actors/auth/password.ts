import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * scrypt password hashes. Default cost N=2^17, r=8, p=1 (OWASP's current recommendation for
 * scrypt). Hashing runs on libuv's thread pool, not the event loop. The stored form names its
 * parameters, so raising the cost later does not break existing hashes.
 */
export interface PasswordCost {
  readonly logN: number;
  readonly r: number;
  readonly p: number;
}

export const RECOMMENDED_COST: PasswordCost = { logN: 17, r: 8, p: 1 };
const KEY_LEN = 32;

function derive(password: string, salt: Buffer, cost: PasswordCost): Promise<Buffer> {
  const N = 2 ** cost.logN;
  const options: ScryptOptions = { N, r: cost.r, p: cost.p, maxmem: 256 * N * cost.r + 1024 * 1024 };
  return new Promise((resolve, reject) => scrypt(password, salt, KEY_LEN, options, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string, cost: PasswordCost = RECOMMENDED_COST): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, cost);
  return `scrypt$${cost.logN}$${cost.r}$${cost.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const cost = { logN: Number(parts[1]), r: Number(parts[2]), p: Number(parts[3]) };
  const expected = Buffer.from(parts[5]!, 'base64');
  const key = await derive(password, Buffer.from(parts[4]!, 'base64'), cost);
  return key.length === expected.length && timingSafeEqual(key, expected);
}
