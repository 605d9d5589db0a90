/**
 * Small records in tables of partitions: (table, partition, key) -> value. A partition is read
 * whole (`list`), so partitions are meant to stay small (a user's friends, a channel's members).
 * Maps onto one Cassandra table with (table, partition) as partition key and key as clustering.
 */
export interface KeyValueRecord {
  readonly key: string;
  readonly value: string;
}

export type KeyValueWrite =
  | { readonly op: 'put'; readonly table: string; readonly partition: string; readonly key: string; readonly value: string }
  | { readonly op: 'delete'; readonly table: string; readonly partition: string; readonly key: string };

export interface KeyValueStore {
  get(table: string, partition: string, key: string): Promise<string | undefined>;
  list(table: string, partition: string, limit?: number): Promise<KeyValueRecord[]>;
  /** Applies all writes, atomically where the engine can (SQLite: one transaction). Durable on resolve. */
  write(writes: readonly KeyValueWrite[]): Promise<void>;
  /** Stores the value unless the key exists; returns the value that is stored afterwards. */
  putIfAbsent(table: string, partition: string, key: string, value: string): Promise<{ readonly created: boolean; readonly value: string }>;
}
