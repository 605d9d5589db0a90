/**
 * The cluster's VAPID key pair, kept in the store so every node signs with the same key: a
 * browser subscribes with one public key, and whichever node later sends to it must match.
 *
 * The first node to start creates a pair and offers it with putIfAbsent; a node starting at the
 * same moment loses that race and takes the stored pair, so all nodes agree without coordination.
 * Later starts only read it. Changing the key would orphan every subscription (push services
 * refuse a JWT from another key), so a stored pair that does not parse stops the node at start
 * instead of being replaced.
 *
 * The private key sits in the store in the clear, like the rest of the store it is protected by
 * the store's own access control (the SQLite file, the Cassandra keyspace).
 */
import type { KeyValueStore } from '../../runtime/storage/key-value.ts';
import { generateVapidKeys, isVapidKeys, type VapidKeys } from '../../runtime/push/vapid.ts';
import { Tables } from '../tables.ts';

const KEY = 'keys';

/** Stored form: snake_case like every other row. */
interface StoredVapidKeys {
  readonly public_key: string;
  readonly private_key: string;
  readonly created_at_ms: number;
}

/** The stored pair, created on first use. Throws when the stored row is not a valid pair. */
export async function loadVapidKeys(kv: KeyValueStore): Promise<VapidKeys> {
  const existing = await kv.get(Tables.pushVapid, '', KEY);
  let stored = existing;
  if (stored === undefined) {
    const fresh = generateVapidKeys();
    const row: StoredVapidKeys = { public_key: fresh.publicKey, private_key: fresh.privateKey, created_at_ms: Date.now() };
    ({ value: stored } = await kv.putIfAbsent(Tables.pushVapid, '', KEY, JSON.stringify(row)));
  }
  let keys: VapidKeys | undefined;
  try {
    const row = JSON.parse(stored) as Partial<StoredVapidKeys>;
    keys = { publicKey: String(row.public_key), privateKey: String(row.private_key) };
  } catch {
    keys = undefined;
  }
  if (!keys || !isVapidKeys(keys)) {
    throw new Error(`the stored VAPID key pair (table ${Tables.pushVapid}) is not a valid P-256 pair; replacing it would orphan every Web Push subscription, so it is left for an operator to repair`);
  }
  return keys;
}
