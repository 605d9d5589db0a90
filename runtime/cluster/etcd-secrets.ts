import type { Etcd3 } from 'etcd3';
import { MembershipError } from './membership-error.ts';

/**
 * Returns the value stored at `key`, creating it with `generate()` if it does not exist yet, in
 * one etcd transaction (create if the key's create revision is 0, else read). Concurrent callers
 * on any number of nodes all get the single value that won. `generate` is called on every call
 * (a losing value is just discarded), so it should be cheap and side-effect free.
 */
export async function ensureSharedSecret(client: Etcd3, key: string, generate: () => string): Promise<string> {
  const candidate = generate();
  let result;
  try {
    result = await client.if(key, 'Create', '==', 0).then(client.put(key).value(candidate)).else(client.get(key)).commit();
  } catch (err) {
    throw new MembershipError('REGISTRY_FAILED', `could not create or read shared value ${key}`, { cause: err });
  }
  if (result.succeeded) return candidate;
  const existing = result.responses[0]?.response_range?.kvs[0]?.value;
  if (existing === undefined) {
    // The compare and the read run at one revision, so the key must be there; guard anyway.
    throw new MembershipError('REGISTRY_FAILED', `transaction on ${key} neither created nor read it`);
  }
  return existing.toString('utf8');
}
