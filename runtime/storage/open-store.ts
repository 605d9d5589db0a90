import { join } from 'node:path';
import { CodedError, RuntimeCodes } from '../errors.ts';
import type { Logger } from '../log.ts';
import { SqliteStore } from './sqlite/sqlite-store.ts';
import type { Store } from './store.ts';

export interface OpenStoreOptions {
  readonly log: Logger;
  /** Where `sqlite:` without a path puts its file. */
  readonly dataDir?: string;
  readonly durability?: 'fsync' | 'os';
}

/**
 * Opens the engine a store URL names: `sqlite:` (file under the data dir), `sqlite:/path/file.db`,
 * `cassandra://HOST[:PORT][,HOST...]/KEYSPACE?dc=...&consistency=...&replication=simple:1` (every
 * parameter: `store` in config/REFERENCE.md).
 * Unknown schemes fail at start with a CONFIG error rather than at the first write.
 */
export async function openStore(url: string, options: OpenStoreOptions): Promise<Store> {
  if (url === 'sqlite' || url === 'sqlite:' || url.startsWith('sqlite:')) {
    const rest = url.replace(/^sqlite:?/, '').replace(/^\/\//, '');
    const path = rest.length > 0 ? rest : join(options.dataDir ?? './data', 'parley.db');
    return new SqliteStore({ path, log: options.log, ...(options.durability ? { durability: options.durability } : {}) });
  }
  if (url.startsWith('cassandra://')) {
    // Loaded on demand: an embedded deployment never pays for the driver.
    const { CassandraStore, parseCassandraUrl } = await import('./cassandra/cassandra-store.ts');
    return CassandraStore.open({ ...parseCassandraUrl(url), log: options.log });
  }
  throw new CodedError(RuntimeCodes.CONFIG, `unsupported store URL "${url}": expected sqlite:[PATH] or cassandra://HOST[:PORT]/KEYSPACE`);
}
