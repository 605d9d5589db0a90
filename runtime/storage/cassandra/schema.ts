import { randomUUID } from 'node:crypto';
import cassandra from 'cassandra-driver';
import { CodedError, RuntimeCodes } from '../../errors.ts';

/**
 * The Cassandra layout, as numbered migrations. Every statement is idempotent (IF NOT EXISTS),
 * so a migration that was half applied when its node died is simply applied again; the number is
 * recorded in `schema_migrations` only after all of its statements succeeded.
 *
 * Tables, and why they are shaped this way:
 *
 * - `heads` ((pid), snap_seq): per persistence id, static columns hold the owner epoch (moved
 *   only by the LWT of an acquire) and `seq`, a hint of where the head is (a head scan starts
 *   there). `intent`, `intent_from` and `intent_token` are left from the layout that committed
 *   every append with an LWT; an acquire writes a leftover intent out and clears it. Snapshots are
 *   clustering rows of the same partition, so saving one can be an LWT conditioned on the same
 *   static epoch (Cassandra only checks conditions within one partition).
 * - `events` ((pid, bucket), seq): the journal. bucket = floor((seq - 1) / bucket_size), so a
 *   partition never holds more than bucket_size events however long an actor lives. Journal
 *   cells are written with the owner epoch in their write timestamp (see cassandra-store.ts).
 * - `events_by_key` ((pid, bucket), key): newest-first index for `readBefore`. It shares the
 *   partition key of `events`, so one unlogged batch writes an event and its index row as a
 *   single mutation (atomic, no batchlog). Bucketing by *seq* bucket rather than by key range
 *   works because keys grow with seq: every key in bucket b is below every key in bucket b+1,
 *   and nothing has to be assumed about how the keys are made. It holds only the seq; the page's
 *   events are then fetched from `events` by `seq IN (...)` in the same partition, so payloads
 *   are not stored twice.
 * - `key_buckets` ((pid), bucket): which buckets hold keyed events, so `readBefore` walks only
 *   those (a pid with a million events has 100 rows here).
 * - `dedup` ((pid, dedup_key)): dedup key -> seq, written (plainly) before the event it names;
 *   a row counts only when the event at that seq carries that key. One tiny partition per key,
 *   so no partition grows with the journal.
 * - `heads.writer`, `heads.released` and `writers` (id) (migration 2): the store object (the
 *   *writer*) that acquired the current epoch, and the last epoch its writer released; a writer
 *   row lists the pids other writers took from it (pid -> epoch revoked). See cassandra-store.ts.
 *   `events.append_from`: the first seq of the append that wrote the event, so an acquire can
 *   find the last append and write its dedup rows again (they share its batch).
 * - `kv` ((tbl, part), k): the key-value store; a partition is read whole by `list`. `claim`
 *   is the token of the putIfAbsent that created a row, so a timed-out one can tell afterwards
 *   whether the row is its own.
 * - `settings` (name): values fixed at creation, such as the bucket size, which must never
 *   change once events were written.
 */
export const MIGRATIONS: readonly { readonly id: number; readonly description: string; readonly statements: readonly string[] }[] = [
  {
    id: 1,
    description: 'journal, heads, snapshots, dedup, key-value',
    statements: [
      `CREATE TABLE IF NOT EXISTS {ks}.settings (name text PRIMARY KEY, value text)`,
      `CREATE TABLE IF NOT EXISTS {ks}.heads (
         pid text,
         snap_seq bigint,
         snap_data text,
         epoch bigint static,
         owner text static,
         owner_token uuid static,
         seq bigint static,
         intent_from bigint static,
         intent text static,
         intent_token uuid static,
         PRIMARY KEY (pid, snap_seq)
       ) WITH CLUSTERING ORDER BY (snap_seq DESC)`,
      `CREATE TABLE IF NOT EXISTS {ks}.events (
         pid text, bucket int, seq bigint, data text, key bigint, dedup text,
         PRIMARY KEY ((pid, bucket), seq)
       ) WITH CLUSTERING ORDER BY (seq ASC)`,
      `CREATE TABLE IF NOT EXISTS {ks}.events_by_key (
         pid text, bucket int, key bigint, seq bigint,
         PRIMARY KEY ((pid, bucket), key)
       ) WITH CLUSTERING ORDER BY (key DESC)`,
      `CREATE TABLE IF NOT EXISTS {ks}.key_buckets (
         pid text, bucket int,
         PRIMARY KEY (pid, bucket)
       ) WITH CLUSTERING ORDER BY (bucket DESC)`,
      `CREATE TABLE IF NOT EXISTS {ks}.dedup (
         pid text, dedup_key text, seq bigint,
         PRIMARY KEY ((pid, dedup_key))
       )`,
      `CREATE TABLE IF NOT EXISTS {ks}.kv (
         tbl text, part text, k text, v text, claim uuid,
         PRIMARY KEY ((tbl, part), k)
       ) WITH CLUSTERING ORDER BY (k ASC)`,
    ],
  },
  {
    id: 2,
    description: 'writers: one fencing check shared by every append of a store',
    statements: [
      `ALTER TABLE {ks}.heads ADD IF NOT EXISTS writer uuid static`,
      `ALTER TABLE {ks}.heads ADD IF NOT EXISTS released bigint static`,
      `CREATE TABLE IF NOT EXISTS {ks}.writers (id uuid PRIMARY KEY, revoked map<text, bigint>)`,
    ],
  },
  {
    id: 3,
    description: 'events.append_from: dedup rows in the events batch',
    statements: [`ALTER TABLE {ks}.events ADD IF NOT EXISTS append_from bigint`],
  },
];

/**
 * `simple` (SimpleStrategy) is for a single-DC dev or test cluster. Production uses `network`
 * (NetworkTopologyStrategy) with a replica count per data centre, which LOCAL_QUORUM and
 * LOCAL_SERIAL are defined against.
 */
export type Replication =
  | { readonly class: 'simple'; readonly replicationFactor: number }
  | { readonly class: 'network'; readonly dataCenters: Readonly<Record<string, number>> };

export interface CassandraSchemaOptions {
  readonly keyspace: string;
  readonly replication: Replication;
  /** How long to wait for another process that is applying migrations right now. */
  readonly lockWaitMs?: number;
}

const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]{0,47}$/;
/** What a data centre name may hold here: enough for real names, nothing that needs quoting in CQL. */
export const DC_NAME = /^[A-Za-z0-9_.-]+$/;
const LOCK_TTL_SECONDS = 60;

export function replicationCql(replication: Replication): string {
  if (replication.class === 'simple') {
    if (!Number.isInteger(replication.replicationFactor) || replication.replicationFactor < 1) {
      throw new CodedError(RuntimeCodes.CONFIG, `replication factor must be a positive integer, got ${replication.replicationFactor}`);
    }
    return `{'class': 'SimpleStrategy', 'replication_factor': ${replication.replicationFactor}}`;
  }
  const entries = Object.entries(replication.dataCenters);
  if (entries.length === 0) throw new CodedError(RuntimeCodes.CONFIG, 'NetworkTopologyStrategy needs at least one data centre');
  const parts = entries.map(([dc, rf]) => {
    if (!DC_NAME.test(dc) || !Number.isInteger(rf) || rf < 1) throw new CodedError(RuntimeCodes.CONFIG, `bad data centre replication ${dc}:${rf}`);
    return `'${dc}': ${rf}`;
  });
  return `{'class': 'NetworkTopologyStrategy', ${parts.join(', ')}}`;
}

export function assertKeyspaceName(keyspace: string): void {
  if (!IDENTIFIER.test(keyspace)) throw new CodedError(RuntimeCodes.CONFIG, `invalid keyspace name "${keyspace}"`);
}

/**
 * Creates the keyspace when missing and applies every migration not yet recorded. Safe to call
 * from every node at every start. Nodes starting together serialise on a lock row (an LWT with a
 * TTL, so a holder that died frees it): concurrent DDL for one table from several coordinators
 * can leave the cluster with two table ids, which is worth one LWT to avoid.
 *
 * An existing keyspace's replication is left alone: changing it needs a repair, which is an
 * operator's decision, not a side effect of starting a node.
 */
export async function applyCassandraSchema(client: cassandra.Client, options: CassandraSchemaOptions): Promise<{ readonly applied: readonly number[] }> {
  assertKeyspaceName(options.keyspace);
  const ks = options.keyspace;
  await client.execute(`CREATE KEYSPACE IF NOT EXISTS ${ks} WITH replication = ${replicationCql(options.replication)}`);
  await client.execute(`CREATE TABLE IF NOT EXISTS ${ks}.schema_migrations (id int PRIMARY KEY, description text, applied_at timestamp)`);
  await client.execute(`CREATE TABLE IF NOT EXISTS ${ks}.schema_lock (id int PRIMARY KEY, holder uuid)`);

  const pending = async (): Promise<typeof MIGRATIONS[number][]> => {
    const rs = await client.execute(`SELECT id FROM ${ks}.schema_migrations`, [], { consistency: cassandra.types.consistencies.quorum });
    const done = new Set(rs.rows.map((r) => r['id'] as number));
    return MIGRATIONS.filter((m) => !done.has(m.id));
  };
  if ((await pending()).length === 0) return { applied: [] };

  const holder = randomUUID();
  const deadline = Date.now() + (options.lockWaitMs ?? 120_000);
  for (;;) {
    const lock = await client.execute(
      `INSERT INTO ${ks}.schema_lock (id, holder) VALUES (0, ?) IF NOT EXISTS USING TTL ${LOCK_TTL_SECONDS}`,
      [holder],
      { prepare: true, serialConsistency: cassandra.types.consistencies.serial, consistency: cassandra.types.consistencies.quorum },
    );
    if (lock.wasApplied()) break;
    if ((await pending()).length === 0) return { applied: [] };
    if (Date.now() > deadline) throw new CodedError(RuntimeCodes.UNAVAILABLE, `timed out waiting for the schema lock of keyspace ${ks}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const applied: number[] = [];
  try {
    for (const migration of await pending()) {
      // The driver waits for schema agreement after each DDL statement before resolving.
      for (const statement of migration.statements) await client.execute(statement.replaceAll('{ks}', ks));
      await client.execute(
        `INSERT INTO ${ks}.schema_migrations (id, description, applied_at) VALUES (?, ?, ?)`,
        [migration.id, migration.description, new Date()],
        { prepare: true, consistency: cassandra.types.consistencies.quorum },
      );
      applied.push(migration.id);
    }
  } finally {
    await client
      .execute(`DELETE FROM ${ks}.schema_lock WHERE id = 0 IF holder = ?`, [holder], {
        prepare: true,
        serialConsistency: cassandra.types.consistencies.serial,
        consistency: cassandra.types.consistencies.quorum,
      })
      .catch(() => undefined); // the TTL frees it anyway
  }
  return { applied };
}
