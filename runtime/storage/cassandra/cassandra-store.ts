import cassandra from 'cassandra-driver';
import { CodedError, RuntimeCodes } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { AppendResult, Journal, JournalEvent, Snapshot } from '../journal.ts';
import type { KeyValueRecord, KeyValueStore, KeyValueWrite } from '../key-value.ts';
import { StoreCodes, type Store } from '../store.ts';
import { applyCassandraSchema, assertKeyspaceName, DC_NAME, type Replication } from './schema.ts';

/**
 * The networked engine: the same Journal and KeyValueStore as SQLite, on Cassandra (5.0, protocol
 * v4/v5), with fencing and gap-free seqs enforced by Cassandra's lightweight transactions rather
 * than by a single writer.
 *
 * ## The append protocol (per persistence id, one `heads` partition)
 *
 * `heads` static columns: epoch, owner_token, seq (the committed head), intent_from, intent (the
 * events of the last committed append, JSON) and intent_token.
 *
 * acquire(pid):
 *  1. LOCAL_SERIAL read of (epoch).
 *  2. No row: `INSERT ... (epoch=1, seq=0, owner_token=T) IF NOT EXISTS`. Row with epoch e:
 *     `UPDATE ... SET epoch=e+1, owner_token=T IF epoch=e`. Not applied: someone else moved it,
 *     back to 1. Outcome unknown (timeout): a LOCAL_SERIAL read settles it (a serial read finishes
 *     any in-flight Paxos round) and owner_token tells whether the winner was us.
 *  3. LOCAL_SERIAL read of the intent and roll it forward (see below), then return the epoch.
 *
 * append(pid, E, events N+1..N+k):
 *  1. For events with a dedupKey: one read of `dedup (pid, key) -> seq` (no Paxos round). A row
 *     there is a duplicate when the journal holds an event with that dedupKey at its seq (rows an
 *     older version of this store claimed before a commit that never came are not). Any
 *     duplicate: nothing is committed, and the stored events are the answer.
 *  2. The commit point, one LWT: `UPDATE heads SET seq=N+k, intent_from=N+1, intent=<events>,
 *     intent_token=T WHERE pid=? IF epoch=E AND seq=N`.
 *     - Not applied and epoch != E: FENCED. Not applied and seq != N: SEQ_CONFLICT (or the
 *       stored duplicate, for a retried dedupKey).
 *     - Outcome unknown: a LOCAL_SERIAL read of intent_token says whether it committed.
 *  3. Write the events to `events`/`events_by_key`, and their dedup rows (plain idempotent
 *     writes, events in seq order).
 *  4. Resolve.
 *
 * Why a fenced epoch can't land: step 2 is a Paxos round on the row acquire also goes through.
 * Once `epoch=E+1` is committed, no proposal conditioned on `epoch=E` can ever be applied, and
 * nothing reaches `events` before its step 2 was applied. Why a seq is never written twice: the
 * head moves N -> N+k only through `IF seq=N`, which can be true once; a second writer of N+1
 * (a retry, a duplicate request, a driver re-send) finds seq=N+k and is refused. Step 3 rewrites
 * the same values under the same keys, so repeating it is harmless. That is why the driver may
 * retry step 3 and the reads (`isIdempotent: true`) but never an LWT: an LWT re-sent after it
 * applied would answer "not applied" for our own write, so its unknown outcomes are settled by a
 * serial read instead.
 *
 * Why a read is enough for dedup: appends of one pid run one at a time in this store, and only the
 * owner can commit (above). Every committed event's dedup row is written in step 3 before the
 * append resolves, or by the roll-forward that the next append, the next acquire or a read runs
 * first. So when step 1 runs, every event committed before it has its dedup row. (A dedup claim
 * was one Paxos round per event: with the head it made a 1:1 message two rounds.)
 *
 * Crash windows. Before step 2 applies: nothing is committed. Between 2 and 3: the events are committed (they
 * are in the head row, at quorum) but not yet in `events`; readers see the journal end at N
 * (a prefix, never a hole, since later events need a later commit). The intent is rolled forward
 * by: the next `acquire` (a new owner always acquires first), any operation of this store on that
 * pid after a failure (the pid is marked unsettled), and `highestSeq`, which never reports a seq
 * it can't read. The invariant that makes one intent column enough: an owner commits the next
 * append only after the previous one's events were written (appends per pid run one at a time
 * in this store, and an unsettled pid is rolled forward first), and a new owner rolls forward
 * before its first append. So an intent is never overwritten before it reached `events`.
 */

export type WriteConsistency = 'ONE' | 'TWO' | 'THREE' | 'QUORUM' | 'ALL' | 'LOCAL_QUORUM' | 'EACH_QUORUM' | 'LOCAL_ONE';
export type SerialConsistency = 'SERIAL' | 'LOCAL_SERIAL';

export interface CassandraStoreOptions {
  /** `host` or `host:port`. */
  readonly contactPoints: readonly string[];
  readonly localDataCenter: string;
  readonly keyspace: string;
  /** Used only when the keyspace is created. */
  readonly replication: Replication;
  /** Reads, writes and the commit phase of LWTs. Default LOCAL_QUORUM. */
  readonly consistency?: WriteConsistency;
  /** The Paxos phase of LWTs and serial reads. Default LOCAL_SERIAL; SERIAL across DCs. */
  readonly serialConsistency?: SerialConsistency;
  /** Events per journal partition. Fixed when the keyspace is created; a different value later is a CONFIG error. */
  readonly bucketSize?: number;
  /** Per request. Default 5000 ms. */
  readonly readTimeoutMs?: number;
  /** Default 3000 ms. */
  readonly connectTimeoutMs?: number;
  readonly credentials?: { readonly username: string; readonly password: string };
  readonly log: Logger;
  /** @internal Fault injection for tests: runs after an append committed, before its events are written. */
  readonly faults?: { readonly afterCommit?: (persistenceId: string) => Promise<void> };
}

/** Keys are Cassandra bigints. */
const MIN_KEY = -(2n ** 63n);
const MAX_KEY = 2n ** 63n - 1n;
const DEFAULT_BUCKET_SIZE = 10_000;
/** Rows per read request; larger results are read in several requests. */
const PAGE = 1_000;
/** Bound on one unlogged batch, well below Cassandra's 16 MiB mutation limit. */
const BATCH_BYTES = 4 * 1024 * 1024;
/** Multi-partition logged batches above this are refused by Cassandra (batch_size_fail_threshold 50 KiB). */
const LOGGED_BATCH_BYTES = 40 * 1024;
const IN_CHUNK = 100;
const HINT_LIMIT = 10_000;
const ACQUIRE_DEADLINE_MS = 30_000;
const INVALID_ARGUMENT = 'INVALID_ARGUMENT';

const { consistencies, responseErrorCodes } = cassandra.types;

const CONSISTENCY: Record<WriteConsistency | SerialConsistency, number> = {
  ONE: consistencies.one,
  TWO: consistencies.two,
  THREE: consistencies.three,
  QUORUM: consistencies.quorum,
  ALL: consistencies.all,
  LOCAL_QUORUM: consistencies.localQuorum,
  EACH_QUORUM: consistencies.eachQuorum,
  LOCAL_ONE: consistencies.localOne,
  SERIAL: consistencies.serial,
  LOCAL_SERIAL: consistencies.localSerial,
};

type Row = cassandra.types.Row;
type Params = readonly unknown[];

interface Intent {
  readonly from: number;
  readonly events: readonly JournalEvent[];
}

/** The static columns of a `heads` partition. */
interface Head {
  readonly epoch?: number;
  readonly ownerToken?: string;
  readonly seq: number;
  readonly intent?: Intent;
  readonly intentToken?: string;
}

/** The `intent` column: events as JSON with keys as decimal strings (JSON has no 64-bit integers). */
type WireIntentEvent = [seq: number, data: string, key: string | null, dedup: string | null];

export class CassandraStore implements Store, Journal, KeyValueStore {
  readonly journal: Journal = this;
  readonly kv: KeyValueStore = this;
  readonly describe: string;
  private readonly ks: string;
  private readonly cl: number;
  private readonly serial: number;
  /**
   * Pids whose last committed intent may not be in `events` yet, with a generation so that a
   * roll-forward that started before a newer failure does not clear it.
   */
  private readonly unsettled = new Map<string, number>();
  private unsettledGeneration = 0;
  private readonly settling = new Map<string, Promise<void>>();
  /** Appends per pid run one after another (see the invariant above). */
  private readonly appendChains = new Map<string, Promise<unknown>>();
  /** (pid, bucket) pairs known to be listed in key_buckets. */
  private readonly knownKeyBuckets = new Set<string>();
  /** pid + key -> bucket of that key, from earlier readBefore pages: where the next page starts. */
  private readonly keyHints = new Map<string, number>();
  private closed = false;

  private constructor(
    private readonly client: cassandra.Client,
    private readonly options: CassandraStoreOptions,
    private readonly bucketSize: number,
  ) {
    this.ks = options.keyspace;
    this.cl = CONSISTENCY[options.consistency ?? 'LOCAL_QUORUM'];
    this.serial = CONSISTENCY[options.serialConsistency ?? 'LOCAL_SERIAL'];
    this.describe = describeUrl(options);
  }

  /** Connects, applies the schema, and reads the settings fixed at creation. */
  static async open(options: CassandraStoreOptions): Promise<CassandraStore> {
    assertKeyspaceName(options.keyspace);
    const readTimeout = options.readTimeoutMs ?? 5_000;
    const client = new cassandra.Client({
      contactPoints: [...options.contactPoints],
      localDataCenter: options.localDataCenter,
      ...(options.credentials ? { credentials: { ...options.credentials } } : {}),
      encoding: { useBigIntAsLong: true, useUndefinedAsUnset: true },
      socketOptions: { readTimeout, connectTimeout: options.connectTimeoutMs ?? 3_000 },
      policies: {
        // The default (1 s doubling to 10 min) could leave the store dark for minutes after
        // Cassandra came back; a short ceiling makes recovery follow the cluster within seconds.
        reconnection: new cassandra.policies.reconnection.ExponentialReconnectionPolicy(200, 2_000, true),
      },
      queryOptions: { consistency: CONSISTENCY[options.consistency ?? 'LOCAL_QUORUM'], prepare: true },
      protocolOptions: { maxSchemaAgreementWaitSeconds: 20 },
    });
    client.on('log', (level: string, className: string, message: string) => {
      if (level === 'error') options.log.warn({ className, message }, 'cassandra driver');
    });
    // cassandra-driver 4.10: when the control connection re-initialises after every node was
    // down, it replaces the Host object of the node without shutting the old one down, and the
    // orphan's pool reconnects forever (it also kept test processes from exiting). A removed
    // host is never used again, so closing its pool is always safe.
    client.on('hostRemove', (host: unknown) => {
      const removed = host as { shutdown?: (waitForPending: boolean) => Promise<void> };
      void removed.shutdown?.(false)?.catch(() => undefined);
    });
    try {
      await client.connect();
      await applyCassandraSchema(client, { keyspace: options.keyspace, replication: options.replication });
      const bucketSize = await settleBucketSize(client, options);
      return new CassandraStore(client, options, bucketSize);
    } catch (err) {
      await client.shutdown().catch(() => undefined);
      throw toStoreError(err);
    }
  }

  // ---- Journal

  async acquire(persistenceId: string, owner: string): Promise<number> {
    const token = cassandra.types.Uuid.random();
    const deadline = Date.now() + ACQUIRE_DEADLINE_MS;
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) {
        if (Date.now() > deadline) throw new CodedError(StoreCodes.UNAVAILABLE, `acquire of ${persistenceId} did not win against contention`);
        await sleep(Math.random() * Math.min(250, 10 * attempt));
      }
      let head: Head | undefined;
      try {
        head = await this.readHead(persistenceId, true);
      } catch (err) {
        if (isPaxosContention(err)) continue;
        throw err;
      }
      // A round of ours whose answer was lost (timeout, contention) did win: the token says so.
      if (head?.ownerToken === token.toString()) return this.finishAcquire(persistenceId, head.epoch!);
      const current = head?.epoch;
      const next = current === undefined ? 1 : current + 1;
      const statement =
        current === undefined
          ? this.lwt(`INSERT INTO ${this.ks}.heads (pid, epoch, owner, owner_token, seq) VALUES (?, 1, ?, ?, 0) IF NOT EXISTS`, [
              persistenceId,
              owner,
              token,
            ])
          : this.lwt(`UPDATE ${this.ks}.heads SET epoch = ?, owner = ?, owner_token = ? WHERE pid = ? IF epoch = ?`, [
              BigInt(next),
              owner,
              token,
              persistenceId,
              BigInt(current),
            ]);
      // Any failure here has an unknown outcome; the next round's serial read settles it. If the
      // cluster is gone, that read fails at once and ends the loop.
      const applied = await statement.then(
        (rs) => rs.wasApplied(),
        (err: unknown) => {
          const coded = toStoreError(err);
          if (coded.code !== StoreCodes.UNAVAILABLE) throw coded;
          return false;
        },
      );
      if (applied) return this.finishAcquire(persistenceId, next);
    }
  }

  /**
   * No older epoch can commit from now on, so the intent read now is the last one it left. Its
   * own roll-forward, not one already running: that one may have read the head before.
   */
  private async finishAcquire(persistenceId: string, epoch: number): Promise<number> {
    try {
      await this.rollForward(persistenceId);
    } catch (err) {
      this.markUnsettled(persistenceId);
      throw toStoreError(err);
    }
    return epoch;
  }

  async append(persistenceId: string, epoch: number, events: readonly JournalEvent[]): Promise<AppendResult> {
    this.ensureOpen();
    validateEvents(events);
    return this.serialize(persistenceId, () => this.appendNow(persistenceId, epoch, events));
  }

  async read(persistenceId: string, afterSeq: number, limit: number): Promise<JournalEvent[]> {
    await this.settleIfNeeded(persistenceId);
    const out: JournalEvent[] = [];
    let cursor = Math.max(0, Math.floor(afterSeq));
    while (out.length < limit) {
      const bucket = this.bucketOf(cursor + 1);
      const want = Math.min(limit - out.length, PAGE);
      const rs = await this.query(
        `SELECT seq, data, key, dedup FROM ${this.ks}.events WHERE pid = ? AND bucket = ? AND seq > ? LIMIT ?`,
        [persistenceId, bucket, BigInt(cursor), want],
        want,
      );
      for (const row of rs.rows) out.push(eventOf(row));
      if (rs.rows.length > 0) cursor = out[out.length - 1]!.seq;
      if (rs.rows.length === want) continue;
      // Seqs are gap-free: a bucket read up to its last seq goes on in the next one, and a bucket
      // that ends short of it is the end of the journal. An empty next bucket ends it too, since
      // then the cursor is no longer at the end of the bucket just read.
      if (cursor === this.bucketEnd(bucket)) continue;
      break;
    }
    return out;
  }

  async readBefore(persistenceId: string, beforeKey: bigint | undefined, limit: number): Promise<JournalEvent[]> {
    await this.settleIfNeeded(persistenceId);
    if (limit <= 0) return [];
    if (beforeKey !== undefined && beforeKey <= MIN_KEY) return [];
    const bound = beforeKey !== undefined && beforeKey > MAX_KEY ? undefined : beforeKey;
    const hint = bound === undefined ? undefined : this.keyHints.get(hintKey(persistenceId, bound));
    const directory = await this.query(
      hint === undefined
        ? `SELECT bucket FROM ${this.ks}.key_buckets WHERE pid = ?`
        : `SELECT bucket FROM ${this.ks}.key_buckets WHERE pid = ? AND bucket <= ?`,
      hint === undefined ? [persistenceId] : [persistenceId, hint],
      5_000,
    );
    const found: { key: bigint; seq: number; bucket: number }[] = [];
    for (const dirRow of directory.rows) {
      const bucket = dirRow['bucket'] as number;
      while (found.length < limit) {
        const want = Math.min(limit - found.length, PAGE);
        const last = found.length > 0 && found[found.length - 1]!.bucket === bucket ? found[found.length - 1]!.key : bound;
        const rs =
          last === undefined
            ? await this.query(`SELECT key, seq FROM ${this.ks}.events_by_key WHERE pid = ? AND bucket = ? LIMIT ?`, [persistenceId, bucket, want], want)
            : await this.query(`SELECT key, seq FROM ${this.ks}.events_by_key WHERE pid = ? AND bucket = ? AND key < ? LIMIT ?`, [persistenceId, bucket, last, want], want);
        for (const row of rs.rows) found.push({ key: row['key'] as bigint, seq: toNumber(row['seq']), bucket });
        if (rs.rows.length < want) break;
      }
      if (found.length >= limit) break;
    }
    const bySeq = new Map((await this.fetchSeqs(persistenceId, found.map((f) => f.seq))).map((e) => [e.seq, e]));
    const out = found.map((f) => bySeq.get(f.seq)).filter((e): e is JournalEvent => e !== undefined);
    const oldest = found[found.length - 1];
    if (oldest) this.rememberHint(persistenceId, oldest.key, oldest.bucket);
    return out;
  }

  async highestSeq(persistenceId: string): Promise<number> {
    await this.settleIfNeeded(persistenceId);
    const head = await this.readHead(persistenceId, false);
    if (!head || head.seq === 0) return 0;
    // A head whose last events are not readable yet belongs to an append that committed but
    // whose writer died or is still writing: finish it rather than report a seq nobody can read.
    if (head.intent && head.intent.from + head.intent.events.length - 1 === head.seq) {
      const present = await this.query(`SELECT seq FROM ${this.ks}.events WHERE pid = ? AND bucket = ? AND seq = ?`, [persistenceId, this.bucketOf(head.seq), BigInt(head.seq)], 1);
      if (present.rows.length === 0) await this.writeEvents(persistenceId, head.intent.events);
    }
    return head.seq;
  }

  async saveSnapshot(persistenceId: string, epoch: number, snapshot: Snapshot): Promise<void> {
    this.ensureOpen();
    let rs: cassandra.types.ResultSet;
    try {
      rs = await this.lwt(`UPDATE ${this.ks}.heads SET snap_data = ? WHERE pid = ? AND snap_seq = ? IF epoch = ?`, [
        dataToText(snapshot.data),
        persistenceId,
        BigInt(snapshot.seq),
        BigInt(epoch),
      ]);
    } catch (err) {
      // Saving the same snapshot again is harmless, so an unknown outcome is the caller's to retry.
      throw toStoreError(err);
    }
    if (!rs.wasApplied()) {
      throw new CodedError(StoreCodes.FENCED, `epoch ${epoch} of ${persistenceId} is no longer the owner (now ${numberOrNone(rs.first()?.['epoch'])})`);
    }
    // Older snapshots are dead weight once a newer one is stored; leaving one behind is harmless.
    await this.exec(`DELETE FROM ${this.ks}.heads WHERE pid = ? AND snap_seq < ?`, [persistenceId, BigInt(snapshot.seq)], true).catch(() => undefined);
  }

  async loadSnapshot(persistenceId: string): Promise<Snapshot | undefined> {
    const rs = await this.query(`SELECT snap_seq, snap_data FROM ${this.ks}.heads WHERE pid = ? LIMIT 1`, [persistenceId], 1);
    const row = rs.first();
    if (!row || row['snap_seq'] === null || row['snap_seq'] === undefined) return undefined;
    return { seq: toNumber(row['snap_seq']), data: textToData((row['snap_data'] as string | null) ?? '') };
  }

  // ---- Key-value

  async get(table: string, partition: string, key: string): Promise<string | undefined> {
    const rs = await this.query(`SELECT v FROM ${this.ks}.kv WHERE tbl = ? AND part = ? AND k = ?`, [table, partition, key], 1);
    return (rs.first()?.['v'] as string | undefined) ?? undefined;
  }

  async list(table: string, partition: string, limit = 10_000): Promise<KeyValueRecord[]> {
    const out: KeyValueRecord[] = [];
    let after: string | undefined;
    while (out.length < limit) {
      const want = Math.min(limit - out.length, PAGE);
      const rs =
        after === undefined
          ? await this.query(`SELECT k, v FROM ${this.ks}.kv WHERE tbl = ? AND part = ? LIMIT ?`, [table, partition, want], want)
          : await this.query(`SELECT k, v FROM ${this.ks}.kv WHERE tbl = ? AND part = ? AND k > ? LIMIT ?`, [table, partition, after, want], want);
      for (const row of rs.rows) out.push({ key: row['k'] as string, value: row['v'] as string });
      if (rs.rows.length < want) break;
      after = out[out.length - 1]!.key;
    }
    return out;
  }

  async write(writes: readonly KeyValueWrite[]): Promise<void> {
    this.ensureOpen();
    if (writes.length === 0) return;
    // In one batch every statement gets the same timestamp, and then a delete beats a put
    // whatever their order; the last write per key is the one the caller meant.
    const last = new Map<string, KeyValueWrite>();
    for (const w of writes) last.set(JSON.stringify([w.table, w.partition, w.key]), w);
    const statements: { query: string; params: Params }[] = [];
    const partitions = new Map<string, { query: string; params: Params }[]>();
    let totalBytes = 0;
    for (const w of last.values()) {
      const statement =
        w.op === 'put'
          ? { query: `INSERT INTO ${this.ks}.kv (tbl, part, k, v) VALUES (?, ?, ?, ?)`, params: [w.table, w.partition, w.key, w.value] }
          : { query: `DELETE FROM ${this.ks}.kv WHERE tbl = ? AND part = ? AND k = ?`, params: [w.table, w.partition, w.key] };
      totalBytes += w.key.length + (w.op === 'put' ? w.value.length : 0) + 64;
      statements.push(statement);
      const partition = JSON.stringify([w.table, w.partition]);
      partitions.set(partition, [...(partitions.get(partition) ?? []), statement]);
    }
    if (partitions.size === 1 || totalBytes <= LOGGED_BATCH_BYTES) {
      // One partition: an unlogged batch is one mutation, atomic and isolated. Several small
      // ones: a logged batch, which the batchlog makes all-or-nothing (not isolated).
      await this.batch(statements, partitions.size > 1);
      return;
    }
    // Several partitions and too large for a logged batch: atomic per partition only.
    for (const group of partitions.values()) await this.batch(group, false);
  }

  async putIfAbsent(table: string, partition: string, key: string, value: string): Promise<{ created: boolean; value: string }> {
    this.ensureOpen();
    const token = cassandra.types.Uuid.random();
    for (let attempt = 0; ; attempt++) {
      try {
        const rs = await this.lwt(`INSERT INTO ${this.ks}.kv (tbl, part, k, v, claim) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`, [table, partition, key, value, token]);
        if (rs.wasApplied()) return { created: true, value };
        return { created: false, value: rs.first()['v'] as string };
      } catch (err) {
        if (!isCasTimeout(err) || attempt >= 3) throw toStoreError(err);
        // Lost in Paxos contention, outcome unknown: the serial read settles it, and the claim
        // token tells our row from an equal value another caller stored.
        const rs = await this.query(`SELECT v, claim FROM ${this.ks}.kv WHERE tbl = ? AND part = ? AND k = ?`, [table, partition, key], 1, this.serial);
        const row = rs.first();
        if (row) return String(row['claim']) === token.toString() ? { created: true, value } : { created: false, value: row['v'] as string };
      }
    }
  }

  // ---- Lifecycle

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.appendChains.values()]);
    await this.client.shutdown();
  }

  // ---- Append internals

  private async appendNow(pid: string, epoch: number, events: readonly JournalEvent[]): Promise<AppendResult> {
    await this.settleIfNeeded(pid);
    if (events.length === 0) {
      const head = await this.readHead(pid, true);
      if (head?.epoch !== epoch) throw fenced(pid, epoch, head?.epoch);
      return { ok: true };
    }
    const from = events[0]!.seq;
    const to = from + events.length - 1;

    // Dedup is a read, not a claim: every committed event's dedup row is written with the event
    // (writeEvents, and the roll-forward of an intent), before its append resolves.
    const duplicates = await this.storedDuplicates(pid, events);
    if (duplicates.length > 0) {
      // Like SQLite, a stale owner is told it is fenced before it is told anything else.
      const head = await this.readHead(pid, true);
      if (head?.epoch !== epoch) throw fenced(pid, epoch, head?.epoch);
      return { ok: false, duplicates };
    }

    const token = cassandra.types.Uuid.random();
    const commit = await this.lwt(
      `UPDATE ${this.ks}.heads SET seq = ?, intent_from = ?, intent = ?, intent_token = ? WHERE pid = ? IF epoch = ? AND seq = ?`,
      [BigInt(to), BigInt(from), encodeIntent(events), token, pid, BigInt(epoch), BigInt(from - 1)],
    ).then(
      (rs) => ({ applied: rs.wasApplied(), row: rs.first() as Row | undefined }),
      async (err: unknown) => {
        // Unknown outcome: the serial read completes any Paxos round still in flight, so after it
        // our proposal either is the committed intent or can never be.
        const head = await this.readHead(pid, true).catch((readErr: unknown) => {
          this.markUnsettled(pid);
          throw toStoreError(readErr);
        });
        if (head?.intentToken === token.toString()) return { applied: true, row: undefined };
        throw toStoreError(err);
      },
    );

    if (!commit.applied) {
      const current = commit.row?.['epoch'];
      const refusal = current === null || current === undefined || toNumber(current) !== epoch
        ? fenced(pid, epoch, current === null || current === undefined ? undefined : toNumber(current))
        : undefined;
      if (!refusal && events[0]!.dedupKey !== undefined) {
        // A retry of an append that did commit (same seqs, same dedup keys): answer like the first.
        const stored = await this.fetchSeqs(pid, events.map((e) => e.seq));
        if (stored.length === events.length && stored.every((e, i) => e.dedupKey !== undefined && e.dedupKey === events[i]!.dedupKey)) {
          return { ok: false, duplicates: stored };
        }
      }
      throw refusal ?? new CodedError(StoreCodes.SEQ_CONFLICT, `${pid}: expected seq ${numberOrNone(commit.row?.['seq'], 1)}, got ${from}`);
    }

    try {
      await this.options.faults?.afterCommit?.(pid);
      await this.writeEvents(pid, events);
    } catch (err) {
      // Committed, so it will be rolled forward; the caller only learns it is not yet readable.
      this.markUnsettled(pid);
      throw toStoreError(err);
    }
    return { ok: true };
  }

  /**
   * The stored events whose dedup keys `events` carry again. A dedup row counts only when the
   * journal holds an event with that key at the seq it names: rows left by the claims of an
   * older version of this store (taken before a commit that never came) are not duplicates.
   */
  private async storedDuplicates(pid: string, events: readonly JournalEvent[]): Promise<JournalEvent[]> {
    const keys = [...new Set(events.map((e) => e.dedupKey).filter((k): k is string => k !== undefined))];
    if (keys.length === 0) return [];
    const found: { key: string; seq: number }[] = [];
    for (let i = 0; i < keys.length; i += IN_CHUNK) {
      const chunk = keys.slice(i, i + IN_CHUNK);
      const rs = await this.query(`SELECT dedup_key, seq FROM ${this.ks}.dedup WHERE pid = ? AND dedup_key IN ?`, [pid, chunk], chunk.length);
      for (const row of rs.rows) found.push({ key: row['dedup_key'] as string, seq: toNumber(row['seq']) });
    }
    if (found.length === 0) return [];
    const stored = new Map((await this.fetchSeqs(pid, found.map((f) => f.seq))).map((e) => [e.seq, e]));
    const byKey = new Map<string, JournalEvent>();
    for (const f of found) {
      const e = stored.get(f.seq);
      if (e?.dedupKey === f.key) byKey.set(f.key, e);
    }
    // In the order of the events that repeat them, as the contract asks.
    return keys.map((k) => byKey.get(k)).filter((e): e is JournalEvent => e !== undefined);
  }

  /**
   * Writes committed events to `events` and `events_by_key`. The two tables share the partition
   * key, so one unlogged batch per bucket is one atomic mutation. Batches go in seq order, one
   * after another, so a reader sees a prefix of the append, never a hole in it.
   */
  private async writeEvents(pid: string, events: readonly JournalEvent[]): Promise<void> {
    const keyedBuckets = new Set<number>();
    let batch: { query: string; params: Params }[] = [];
    let batchBucket = -1;
    let batchBytes = 0;
    const flush = async (): Promise<void> => {
      if (batch.length > 0) await this.batch(batch, false);
      batch = [];
      batchBytes = 0;
    };
    for (const e of events) {
      const bucket = this.bucketOf(e.seq);
      const text = dataToText(e.data);
      const bytes = text.length + (e.dedupKey?.length ?? 0) + 64;
      if (bucket !== batchBucket || batchBytes + bytes > BATCH_BYTES) await flush();
      batchBucket = bucket;
      batchBytes += bytes;
      batch.push({
        query: `INSERT INTO ${this.ks}.events (pid, bucket, seq, data, key, dedup) VALUES (?, ?, ?, ?, ?, ?)`,
        params: [pid, bucket, BigInt(e.seq), text, e.key ?? null, e.dedupKey ?? null],
      });
      if (e.key !== undefined) {
        batch.push({ query: `INSERT INTO ${this.ks}.events_by_key (pid, bucket, key, seq) VALUES (?, ?, ?, ?)`, params: [pid, bucket, e.key, BigInt(e.seq)] });
        keyedBuckets.add(bucket);
      }
    }
    await flush();
    // One partition per dedup key: plain idempotent writes, all at once.
    await Promise.all(
      events.filter((e) => e.dedupKey !== undefined).map((e) => this.exec(`INSERT INTO ${this.ks}.dedup (pid, dedup_key, seq) VALUES (?, ?, ?)`, [pid, e.dedupKey!, BigInt(e.seq)], true)),
    );
    for (const bucket of keyedBuckets) {
      const known = `${pid}\u0000${bucket}`;
      if (this.knownKeyBuckets.has(known)) continue;
      await this.exec(`INSERT INTO ${this.ks}.key_buckets (pid, bucket) VALUES (?, ?)`, [pid, bucket], true);
      if (this.knownKeyBuckets.size >= HINT_LIMIT * 10) this.knownKeyBuckets.clear();
      this.knownKeyBuckets.add(known);
    }
  }

  /** Writes the last committed intent of a pid into `events` (again: the writes are idempotent). */
  private async rollForward(pid: string): Promise<void> {
    const head = await this.readHead(pid, true);
    if (head?.intent) await this.writeEvents(pid, head.intent.events);
  }

  private markUnsettled(pid: string): void {
    this.unsettled.set(pid, ++this.unsettledGeneration);
  }

  /** Rolls an unsettled pid forward before anything reads or appends it; concurrent callers share one run. */
  private async settleIfNeeded(pid: string): Promise<void> {
    this.ensureOpen();
    const generation = this.unsettled.get(pid);
    if (generation === undefined) return;
    let run = this.settling.get(pid);
    if (!run) {
      run = this.rollForward(pid)
        .then(() => {
          if (this.unsettled.get(pid) === generation) this.unsettled.delete(pid);
        })
        .finally(() => this.settling.delete(pid));
      this.settling.set(pid, run);
    }
    await run;
  }

  private serialize<T>(pid: string, run: () => Promise<T>): Promise<T> {
    const previous = this.appendChains.get(pid) ?? Promise.resolve();
    const result = previous.then(run, run);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.appendChains.set(pid, tail);
    void tail.then(() => {
      if (this.appendChains.get(pid) === tail) this.appendChains.delete(pid);
    });
    return result;
  }

  // ---- Read internals

  private async readHead(pid: string, serial: boolean): Promise<Head | undefined> {
    const rs = await this.query(
      `SELECT epoch, owner_token, seq, intent_from, intent, intent_token FROM ${this.ks}.heads WHERE pid = ? LIMIT 1`,
      [pid],
      1,
      serial ? this.serial : this.cl,
    );
    const row = rs.first();
    if (!row || row['epoch'] === null || row['epoch'] === undefined) return undefined;
    const intentFrom = row['intent_from'] as bigint | null;
    const intentText = row['intent'] as string | null;
    return {
      epoch: toNumber(row['epoch']),
      seq: toNumber(row['seq'] ?? 0n),
      ...(row['owner_token'] ? { ownerToken: String(row['owner_token']) } : {}),
      ...(row['intent_token'] ? { intentToken: String(row['intent_token']) } : {}),
      ...(intentFrom !== null && intentText !== null ? { intent: { from: toNumber(intentFrom), events: decodeIntent(intentText) } } : {}),
    };
  }

  private async fetchSeqs(pid: string, seqs: readonly number[]): Promise<JournalEvent[]> {
    const byBucket = new Map<number, number[]>();
    for (const s of new Set(seqs)) {
      if (!Number.isSafeInteger(s) || s < 1) continue;
      const b = this.bucketOf(s);
      byBucket.set(b, [...(byBucket.get(b) ?? []), s]);
    }
    const requests: Promise<cassandra.types.ResultSet>[] = [];
    for (const [bucket, list] of byBucket) {
      for (let i = 0; i < list.length; i += IN_CHUNK) {
        const chunk = list.slice(i, i + IN_CHUNK);
        requests.push(this.query(`SELECT seq, data, key, dedup FROM ${this.ks}.events WHERE pid = ? AND bucket = ? AND seq IN ?`, [pid, bucket, chunk.map(BigInt)], chunk.length));
      }
    }
    const results = await Promise.all(requests);
    return results.flatMap((rs) => rs.rows.map(eventOf)).sort((a, b) => a.seq - b.seq);
  }

  private rememberHint(pid: string, key: bigint, bucket: number): void {
    if (this.keyHints.size >= HINT_LIMIT) this.keyHints.delete(this.keyHints.keys().next().value!);
    this.keyHints.set(hintKey(pid, key), bucket);
  }

  // ---- Driver access: every error leaves here as a CodedError

  private query(query: string, params: Params, fetchSize: number, consistency = this.cl): Promise<cassandra.types.ResultSet> {
    this.ensureOpen();
    return this.client
      .execute(query, [...params], { prepare: true, consistency, isIdempotent: true, fetchSize: Math.max(1, fetchSize) })
      .catch((err: unknown) => {
        throw toStoreError(err);
      });
  }

  private exec(query: string, params: Params, idempotent: boolean): Promise<cassandra.types.ResultSet> {
    this.ensureOpen();
    return this.client.execute(query, [...params], { prepare: true, consistency: this.cl, isIdempotent: idempotent }).catch((err: unknown) => {
      throw toStoreError(err);
    });
  }

  /** Never retried by the driver: see the class comment. Errors are raw so callers can settle unknown outcomes. */
  private lwt(query: string, params: Params): Promise<cassandra.types.ResultSet> {
    this.ensureOpen();
    return this.client.execute(query, [...params], { prepare: true, consistency: this.cl, serialConsistency: this.serial, isIdempotent: false });
  }

  private async batch(statements: readonly { query: string; params: Params }[], logged: boolean): Promise<void> {
    this.ensureOpen();
    try {
      if (statements.length === 1) {
        await this.client.execute(statements[0]!.query, [...statements[0]!.params], { prepare: true, consistency: this.cl, isIdempotent: true });
      } else {
        await this.client.batch(
          statements.map((s) => ({ query: s.query, params: [...s.params] })),
          { prepare: true, logged, consistency: this.cl, isIdempotent: true },
        );
      }
    } catch (err) {
      throw toStoreError(err);
    }
  }

  private bucketOf(seq: number): number {
    return Math.floor((seq - 1) / this.bucketSize);
  }

  /** The last seq of a bucket. */
  private bucketEnd(bucket: number): number {
    return (bucket + 1) * this.bucketSize;
  }

  private ensureOpen(): void {
    if (this.closed) throw new CodedError(StoreCodes.UNAVAILABLE, 'store is closed');
  }
}

// ---- Options from a URL

/**
 * The one syntax of the `replication` URL parameter: SimpleStrategy with a replica count, or
 * NetworkTopologyStrategy with a replica count per data centre. config/REFERENCE.md (the `store`
 * setting) shows the same, and a test holds the docs' examples to this parser.
 */
export const REPLICATION_SYNTAX = 'simple:RF or network:DC=RF[,DC=RF...]';

/**
 * `cassandra://host[:port][,host[:port]...]/keyspace?dc=datacenter1&consistency=LOCAL_QUORUM
 * &serial=LOCAL_SERIAL&replication=simple:1&bucket=10000&readTimeoutMs=5000&connectTimeoutMs=3000`.
 * `replication=network:dc1=3,dc2=2` selects NetworkTopologyStrategy (see REPLICATION_SYNTAX).
 */
export function parseCassandraUrl(url: string): Omit<CassandraStoreOptions, 'log'> {
  const match = /^cassandra:\/\/([^/?#]+)\/([^/?#]+)(?:\?([^#]*))?$/.exec(url);
  if (!match) throw new CodedError(RuntimeCodes.CONFIG, `invalid Cassandra URL "${url}": expected cassandra://HOST[:PORT][,HOST[:PORT]...]/KEYSPACE[?PARAMS]`);
  const [, hosts, keyspace, query] = match;
  const params = new URLSearchParams(query ?? '');
  const known = new Set(['dc', 'consistency', 'serial', 'replication', 'bucket', 'readTimeoutMs', 'connectTimeoutMs']);
  for (const name of params.keys()) if (!known.has(name)) throw new CodedError(RuntimeCodes.CONFIG, `unknown Cassandra URL parameter "${name}"`);
  const consistency = params.get('consistency') ?? 'LOCAL_QUORUM';
  if (!(consistency in CONSISTENCY) || consistency.includes('SERIAL')) throw new CodedError(RuntimeCodes.CONFIG, `unknown consistency "${consistency}"`);
  const serial = params.get('serial') ?? 'LOCAL_SERIAL';
  if (serial !== 'SERIAL' && serial !== 'LOCAL_SERIAL') throw new CodedError(RuntimeCodes.CONFIG, `unknown serial consistency "${serial}"`);
  const positive = (name: string): number | undefined => {
    const raw = params.get(name);
    if (raw === null) return undefined;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1) throw new CodedError(RuntimeCodes.CONFIG, `${name} must be a positive integer, got "${raw}"`);
    return n;
  };
  const bucketSize = positive('bucket');
  const readTimeoutMs = positive('readTimeoutMs');
  const connectTimeoutMs = positive('connectTimeoutMs');
  assertKeyspaceName(keyspace!);
  const replication = parseReplication(params.get('replication') ?? 'simple:1');
  return {
    contactPoints: hosts!.split(',').map((h) => h.trim()).filter((h) => h.length > 0),
    localDataCenter: localDataCenter(params.get('dc'), replication),
    keyspace: keyspace!,
    replication,
    consistency: consistency as WriteConsistency,
    serialConsistency: serial,
    ...(bucketSize === undefined ? {} : { bucketSize }),
    ...(readTimeoutMs === undefined ? {} : { readTimeoutMs }),
    ...(connectTimeoutMs === undefined ? {} : { connectTimeoutMs }),
  };
}

function parseReplication(text: string): Replication {
  const bad = (why: string): CodedError =>
    new CodedError(RuntimeCodes.CONFIG, `bad replication "${text}": ${why}; expected ${REPLICATION_SYNTAX}, e.g. network:dc1=3,dc2=2`);
  const factor = (raw: string, of: string): number => {
    const rf = Number(raw);
    if (!Number.isSafeInteger(rf) || rf < 1) throw bad(`the replica count of ${of} must be a positive integer`);
    return rf;
  };
  if (text.startsWith('simple:')) {
    const rf = text.slice('simple:'.length);
    if (!/^\d+$/.test(rf)) throw bad('simple takes one replica count');
    return { class: 'simple', replicationFactor: factor(rf, 'simple') };
  }
  if (!text.startsWith('network:')) throw bad('the strategy is neither simple nor network');
  const dataCenters = new Map<string, number>();
  for (const part of text.slice('network:'.length).split(',')) {
    const m = /^([^=:,]+)=(\d+)$/.exec(part.trim());
    if (!m) throw bad(`"${part}" is not DC=RF`);
    const dc = m[1]!;
    if (!DC_NAME.test(dc)) throw bad(`data centre name "${dc}" may hold only letters, digits, _ . -`);
    if (dataCenters.has(dc)) throw bad(`data centre ${dc} is given twice`);
    dataCenters.set(dc, factor(m[2]!, dc));
  }
  return { class: 'network', dataCenters: Object.fromEntries(dataCenters) };
}

/**
 * The data centre this node reads and writes in (LOCAL_QUORUM, LOCAL_SERIAL): `dc`, which must
 * hold replicas when the replication names data centres; with one named and no `dc`, that one.
 */
function localDataCenter(dc: string | null, replication: Replication): string {
  if (replication.class === 'simple') return dc ?? 'datacenter1';
  const named = Object.keys(replication.dataCenters);
  if (dc === null) {
    if (named.length === 1) return named[0]!;
    throw new CodedError(RuntimeCodes.CONFIG, `replication names several data centres (${named.join(', ')}): say which is local with dc=`);
  }
  if (!named.includes(dc)) throw new CodedError(RuntimeCodes.CONFIG, `dc=${dc} holds no replicas under replication network:${named.map((n) => `${n}=${replication.dataCenters[n]}`).join(',')}: LOCAL_QUORUM there could never succeed`);
  return dc;
}

function describeUrl(o: CassandraStoreOptions): string {
  const replication =
    o.replication.class === 'simple'
      ? `simple:${o.replication.replicationFactor}`
      : `network:${Object.entries(o.replication.dataCenters).map(([dc, rf]) => `${dc}=${rf}`).join(',')}`;
  const params = new URLSearchParams({ dc: o.localDataCenter, consistency: o.consistency ?? 'LOCAL_QUORUM', serial: o.serialConsistency ?? 'LOCAL_SERIAL', replication });
  return `cassandra://${o.contactPoints.join(',')}/${o.keyspace}?${params.toString().replaceAll('%3A', ':').replaceAll('%2C', ',').replaceAll('%3D', '=')}`;
}

/** The bucket size is stored at creation: reading events with another one would find nothing. */
async function settleBucketSize(client: cassandra.Client, options: CassandraStoreOptions): Promise<number> {
  const wanted = options.bucketSize ?? DEFAULT_BUCKET_SIZE;
  if (!Number.isSafeInteger(wanted) || wanted < 1) throw new CodedError(RuntimeCodes.CONFIG, `bucket size must be a positive integer, got ${wanted}`);
  const serialConsistency = CONSISTENCY[options.serialConsistency ?? 'LOCAL_SERIAL'];
  const consistency = CONSISTENCY[options.consistency ?? 'LOCAL_QUORUM'];
  let stored: number | undefined;
  // Read first: every open after the keyspace's first one finds the row, and nodes starting
  // together would otherwise all contend on one Paxos row.
  for (let attempt = 0; stored === undefined; attempt++) {
    const read = await client.execute(`SELECT value FROM ${options.keyspace}.settings WHERE name = 'bucket_size'`, [], { prepare: true, consistency });
    const row = read.first();
    if (row) {
      stored = Number(row['value']);
      break;
    }
    try {
      const rs = await client.execute(`INSERT INTO ${options.keyspace}.settings (name, value) VALUES ('bucket_size', ?) IF NOT EXISTS`, [String(wanted)], {
        prepare: true,
        serialConsistency,
        consistency,
      });
      stored = rs.wasApplied() ? wanted : Number(rs.first()['value']);
    } catch (err) {
      if (!isCasTimeout(err) || attempt >= 5) throw err;
      await sleep(Math.random() * 200);
    }
  }
  if (options.bucketSize !== undefined && options.bucketSize !== stored) {
    throw new CodedError(RuntimeCodes.CONFIG, `keyspace ${options.keyspace} was created with bucket size ${stored}, not ${options.bucketSize}`);
  }
  return stored;
}

// ---- Encoding

function validateEvents(events: readonly JournalEvent[]): void {
  for (const [i, e] of events.entries()) {
    if (!Number.isSafeInteger(e.seq) || e.seq < 1) throw new CodedError(INVALID_ARGUMENT, `seq must be a positive integer, got ${e.seq}`, { expected: true });
    if (i > 0 && e.seq !== events[i - 1]!.seq + 1) {
      throw new CodedError(StoreCodes.SEQ_CONFLICT, `seqs of one append must be consecutive: ${events[i - 1]!.seq} then ${e.seq}`);
    }
    if (e.key !== undefined && (e.key < MIN_KEY || e.key > MAX_KEY)) {
      throw new CodedError(INVALID_ARGUMENT, `event key ${e.key} does not fit 64 bits`, { expected: true });
    }
  }
}

function encodeIntent(events: readonly JournalEvent[]): string {
  const wire: WireIntentEvent[] = events.map((e) => [e.seq, dataToText(e.data), e.key === undefined ? null : e.key.toString(), e.dedupKey ?? null]);
  return JSON.stringify(wire);
}

function decodeIntent(text: string): JournalEvent[] {
  return (JSON.parse(text) as WireIntentEvent[]).map(([seq, data, key, dedup]) => ({
    seq,
    data: textToData(data),
    ...(key === null ? {} : { key: BigInt(key) }),
    ...(dedup === null ? {} : { dedupKey: dedup }),
  }));
}

function eventOf(row: Row): JournalEvent {
  const key = row['key'] as bigint | null;
  const dedup = row['dedup'] as string | null;
  return { seq: toNumber(row['seq']), data: textToData(row['data'] as string), ...(key === null ? {} : { key }), ...(dedup === null ? {} : { dedupKey: dedup }) };
}

/**
 * Event data is bytes; the `data` columns are text (the layout predates binary data), so bytes
 * are stored as base64 behind a marker that JSON, what those columns held before, never starts with.
 */
const B64 = '\u0000b64:';

function dataToText(data: Uint8Array): string {
  return B64 + Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
}

function textToData(text: string): Uint8Array {
  return text.startsWith(B64) ? Buffer.from(text.slice(B64.length), 'base64') : Buffer.from(text, 'utf8');
}

/** Seqs, epochs and buckets stay far below 2^53; only event keys need all 64 bits. */
function toNumber(value: unknown): number {
  return Number(value);
}

function numberOrNone(value: unknown, plus = 0): string {
  return value === null || value === undefined ? 'none' : String(toNumber(value) + plus);
}

function hintKey(pid: string, key: bigint): string {
  return `${pid}\u0000${key}`;
}

function fenced(pid: string, epoch: number, current: number | undefined): CodedError {
  return new CodedError(StoreCodes.FENCED, `epoch ${epoch} of ${pid} is no longer the owner (now ${current ?? 'none'})`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A Paxos round that timed out on the server, typically lost to contention on the same row. Its
 * outcome is unknown; unlike a dead node it is worth another round at once.
 */
function isCasTimeout(err: unknown): boolean {
  const raw = err instanceof CodedError ? err.cause : err;
  return (
    raw instanceof cassandra.errors.ResponseError &&
    raw.code === responseErrorCodes.writeTimeout &&
    (raw as cassandra.errors.ResponseError & { writeType?: string }).writeType === 'CAS'
  );
}

/** A CAS write or a serial read that timed out in Paxos: contention, worth another round. */
function isPaxosContention(err: unknown): boolean {
  if (isCasTimeout(err)) return true;
  const raw = err instanceof CodedError ? err.cause : err;
  if (!(raw instanceof cassandra.errors.ResponseError) || raw.code !== responseErrorCodes.readTimeout) return false;
  const level = (raw as cassandra.errors.ResponseError & { consistencies?: number }).consistencies;
  return level === consistencies.serial || level === consistencies.localSerial;
}

/**
 * Driver failures become UNAVAILABLE (retryable: the cluster is down, slow or overloaded);
 * refusals that no retry fixes (bad credentials, invalid CQL) keep a distinct code.
 */
export function toStoreError(err: unknown): CodedError {
  if (err instanceof CodedError) return err;
  if (err instanceof cassandra.errors.AuthenticationError) return new CodedError(RuntimeCodes.CONFIG, `cassandra authentication failed: ${err.message}`, { cause: err });
  if (err instanceof cassandra.errors.ResponseError) {
    switch (err.code) {
      case responseErrorCodes.badCredentials:
      case responseErrorCodes.unauthorized:
      case responseErrorCodes.configError:
        return new CodedError(RuntimeCodes.CONFIG, `cassandra refused: ${err.message}`, { cause: err });
      case responseErrorCodes.syntaxError:
      case responseErrorCodes.invalid:
      case responseErrorCodes.protocolError:
        return new CodedError('INTERNAL', `cassandra rejected a statement: ${err.message}`, { cause: err });
    }
  }
  // Raised by the driver before anything was sent: a parameter of the wrong type is a bug here.
  if (err instanceof TypeError || err instanceof cassandra.errors.ArgumentError) {
    return new CodedError('INTERNAL', `cassandra driver refused a request: ${err.message}`, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new CodedError(StoreCodes.UNAVAILABLE, `cassandra unavailable: ${message}`, { cause: err });
}
