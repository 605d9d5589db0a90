import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { availableParallelism } from 'node:os';
import type { WorkGate } from '../../runtime/limits/work-gate.ts';

/**
 * scrypt password hashes. Default cost N=2^17, r=8, p=1 (OWASP's current recommendation for
 * scrypt). The stored form names its parameters, so raising the cost later does not break
 * existing hashes. The derivation itself is pluggable (`Derive`): libuv's pool by default (tools,
 * tests), low-priority threads of its own in a node (scrypt-threads.ts).
 */
export interface PasswordCost {
  readonly logN: number;
  readonly r: number;
  readonly p: number;
}

export const RECOMMENDED_COST: PasswordCost = { logN: 17, r: 8, p: 1 };
export const KEY_LEN = 32;

/** Derives the KEY_LEN-byte key of `password` with `salt` at `cost`. */
export type Derive = (password: string, salt: Buffer, cost: PasswordCost) => Promise<Buffer>;

/** Node's scrypt options for a cost; maxmem leaves room above the 128 * N * r bytes it needs. */
export function scryptOptions(cost: PasswordCost): { N: number; r: number; p: number; maxmem: number } {
  const N = 2 ** cost.logN;
  return { N, r: cost.r, p: cost.p, maxmem: 256 * N * cost.r + 1024 * 1024 };
}

/** scrypt on libuv's thread pool. */
export const deriveOnPool: Derive = (password, salt, cost) => {
  const options: ScryptOptions = scryptOptions(cost);
  return new Promise((resolve, reject) => scrypt(password, salt, KEY_LEN, options, (err, key) => (err ? reject(err) : resolve(key))));
};

export async function hashPassword(password: string, cost: PasswordCost = RECOMMENDED_COST, derive: Derive = deriveOnPool): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, cost);
  return `scrypt$${cost.logN}$${cost.r}$${cost.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string, derive: Derive = deriveOnPool): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const cost = { logN: Number(parts[1]), r: Number(parts[2]), p: Number(parts[3]) };
  const expected = Buffer.from(parts[5]!, 'base64');
  const key = await derive(password, Buffer.from(parts[4]!, 'base64'), cost);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/**
 * Password hashes at one cost, at most a few at a time on this node (through `gate`: scrypt at
 * N=2^17 keeps a core busy for a few hundred ms, so unbounded logins would starve everything
 * else), each one counted in `hashed`.
 */
export class PasswordHasher {
  /**
   * Stands in for the hash of an unknown user, so a miss costs one derivation at this cost, as a
   * hit does. Random, not the hash of anything: no password verifies against it.
   */
  private readonly decoy: string;

  constructor(
    readonly cost: PasswordCost,
    private readonly gate: WorkGate,
    private readonly hashed: { add(n?: number): void } = { add: () => undefined },
    private readonly derive: Derive = deriveOnPool,
  ) {
    this.decoy = `scrypt$${cost.logN}$${cost.r}$${cost.p}$${randomBytes(16).toString('base64')}$${randomBytes(KEY_LEN).toString('base64')}`;
  }

  hash(password: string): Promise<string> {
    return this.gate.run(() => {
      this.hashed.add();
      return hashPassword(password, this.cost, this.derive);
    });
  }

  /** Whether `password` matches `stored`; with `stored` undefined (no such user), false at the same cost. */
  verify(password: string, stored: string | undefined): Promise<boolean> {
    return this.gate.run(async () => {
      this.hashed.add();
      // A hash of another form (parleyctl's "no login" marker) costs a derivation too, or its speed would tell.
      const real = stored !== undefined && stored.startsWith('scrypt$');
      const ok = await verifyPassword(password, real ? stored : this.decoy, this.derive);
      return ok && real;
    });
  }
}

/**
 * How many password hashes a node runs at once by default: half the cores (at least one),
 * leaving the rest to the event loop.
 */
export function defaultHashConcurrency(): number {
  return Math.max(1, Math.floor(availableParallelism() / 2));
}
