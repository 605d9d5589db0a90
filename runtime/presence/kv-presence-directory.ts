import type { KeyValueStore } from '../storage/index.ts';
import type { PresenceDirectory, PresenceState } from './presence-directory.ts';

const TABLE = 'presence';

/**
 * Presence in the shared store, for nodes of a cluster without Redis: transitions are rare
 * (connect, last disconnect), so a durable write each is affordable, and any node reads them.
 */
export class KvPresenceDirectory implements PresenceDirectory {
  constructor(private readonly kv: KeyValueStore) {}

  async set(userId: string, state: PresenceState): Promise<void> {
    await this.kv.write([{ op: 'put', table: TABLE, partition: userId, key: '', value: JSON.stringify(state) }]);
  }

  async getMany(userIds: readonly string[]): Promise<Map<string, PresenceState>> {
    const values = await Promise.all(userIds.map((id) => this.kv.get(TABLE, id, '')));
    const out = new Map<string, PresenceState>();
    userIds.forEach((id, i) => out.set(id, values[i] ? (JSON.parse(values[i]!) as PresenceState) : { online: false, lastActiveAtMs: 0 }));
    return out;
  }
}
