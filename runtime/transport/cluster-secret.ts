import { createHash, timingSafeEqual } from 'node:crypto';

/** gRPC metadata key carrying the shared cluster secret on every inter-node stream. */
export const CLUSTER_SECRET_HEADER = 'x-parley-cluster-secret';
/** gRPC metadata key naming the node that opened a stream. */
export const NODE_ID_HEADER = 'x-parley-node-id';

/**
 * Constant-time secret check. Both sides are hashed first so that neither the comparison time
 * nor an early length mismatch tells an attacker how much of a guess was right.
 */
export function secretMatches(expected: string, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const a = createHash('sha256').update(expected, 'utf8').digest();
  const b = createHash('sha256').update(presented, 'utf8').digest();
  return timingSafeEqual(a, b);
}
