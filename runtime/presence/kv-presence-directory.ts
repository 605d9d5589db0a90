import type { KeyValueRecord, KeyValueStore } from '../storage/index.ts';
import type { PresenceDirectory, PresenceState } from './presence-directory.ts';

const TABLE = 'presence';
const NEVER_SEEN: PresenceState = { online: false, lastActiveAtMs: 0 };

/** An epoch as fixed-width text, so that text order is numeric order. */
function rowKey(epoch: number): string {
  return String(epoch).padStart(16, '0');
}

/**
 * Presence in the shared store, for nodes of a cluster without Redis: transitions are rare
 * (connect, last disconnect), so a durable write each is affordable, and any node reads them.
 *
 * Fencing without a conditional write: each owner writes its row under its own epoch as the
 * key, in the user's partition, and a read takes the row with the highest key. A stale owner's
 * write lands under a lower key than its successor's and is never read, whatever the order the
 * writes reach the store in. A writer deletes the rows below its own, so a partition holds one
 * row, or two while a takeover races. (Rows written before epochs were kept have the key '', the
 * lowest: read until the first new write, then deleted.)
 */
export class KvPresenceDirectory implements PresenceDirectory {
  constructor(private readonly kv: KeyValueStore) {}

  async set(userId: string, state: PresenceState, epoch: number): Promise<boolean> {
    return this.write(userId, epoch, () => JSON.stringify(state));
  }

  async fence(userId: string, epoch: number): Promise<boolean> {
    // The successor's row starts as the newest state, so readers see no change.
    return this.write(userId, epoch, (newest) => newest?.value ?? JSON.stringify(NEVER_SEEN));
  }

  async getMany(userIds: readonly string[]): Promise<Map<string, PresenceState>> {
    const partitions = await Promise.all(userIds.map((id) => this.kv.list(TABLE, id)));
    const out = new Map<string, PresenceState>();
    userIds.forEach((id, i) => {
      const row = newestOf(partitions[i]!);
      out.set(id, row ? (JSON.parse(row.value) as PresenceState) : NEVER_SEEN);
    });
    return out;
  }

  /** Puts the row of `epoch` and drops older ones, unless a newer owner's row exists (false). */
  private async write(userId: string, epoch: number, value: (newest: KeyValueRecord | undefined) => string): Promise<boolean> {
    const key = rowKey(epoch);
    const rows = await this.kv.list(TABLE, userId);
    const newest = newestOf(rows);
    if (newest && newest.key > key) return false;
    await this.kv.write([
      { op: 'put', table: TABLE, partition: userId, key, value: value(newest) },
      ...rows.filter((r) => r.key < key).map((r) => ({ op: 'delete' as const, table: TABLE, partition: userId, key: r.key })),
    ]);
    return true;
  }
}

function newestOf(rows: readonly KeyValueRecord[]): KeyValueRecord | undefined {
  let best: KeyValueRecord | undefined;
  for (const r of rows) if (!best || r.key > best.key) best = r;
  return best;
}
