/**
 * Which node hosts each user's devices, so that after a node dies its users can be found and told
 * (their devices there are gone, notifications from there may be lost). A lone node never loses
 * another node, so it keeps no index (`NoDeviceNodes`); a cluster member keeps it in the store's
 * key-value table (`StoredDeviceNodes`). The assembly picks one; the user actor just calls it.
 *
 * @example
 * ```ts
 * const index = membership ? new StoredDeviceNodes(store) : new NoDeviceNodes();
 * await index.set('n2', 'alice', true);
 * await index.usersOn('n2'); // ['alice']
 * ```
 */
import type { Store } from '../../runtime/storage/index.ts';
import { Tables } from '../tables.ts';

export interface DeviceNodes {
  /** Records (present) or forgets that `userId` has a device on `nodeId`. */
  set(nodeId: string, userId: string, present: boolean): Promise<void>;
  /** Users recorded with a device on `nodeId`. */
  usersOn(nodeId: string): Promise<string[]>;
}

export class StoredDeviceNodes implements DeviceNodes {
  constructor(private readonly store: Store) {}

  set(nodeId: string, userId: string, present: boolean): Promise<void> {
    return this.store.kv.write([
      present
        ? { op: 'put', table: Tables.presenceNode, partition: nodeId, key: userId, value: '1' }
        : { op: 'delete', table: Tables.presenceNode, partition: nodeId, key: userId },
    ]);
  }

  async usersOn(nodeId: string): Promise<string[]> {
    return (await this.store.kv.list(Tables.presenceNode, nodeId)).map((r) => r.key);
  }
}

export class NoDeviceNodes implements DeviceNodes {
  set(): Promise<void> {
    return Promise.resolve();
  }

  usersOn(): Promise<string[]> {
    return Promise.resolve([]);
  }
}
