import cassandra from 'cassandra-driver';
import { CodedError, RuntimeCodes } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { AppendResult, Journal, JournalEvent, Snapshot } from '../journal.ts';
import type { KeyValueRecord, KeyValueStore, KeyValueWrite } from '../key-value.ts';
import { StoreCodes, type Store } from '../store.ts';
import { applyCassandraSchema, assertKeyspaceName, DC_NAME, type Replication } from './schema.ts';

/**
 * The networked engine: the same Journal and KeyValueStore as SQLite, on Cassandra (5.0, protocol
 * v4/v5). Fencing and gap-free seqs cost one lightweight transaction per *activation*, not per
 * append: an append is a dedup read and plain LOCAL_QUORUM writes, and its fencing check is one
 * LOCAL_QUORUM read shared with every other append of this store that finished writing meanwhile.
 *
 * ## Writers
 * Each store object is a *writer* with a random id. An acquire records its writer in `heads`
 * with the epoch. Another writer's appends to a pid are fenced through the writer's own row in
 * `writers`: an acquire that replaces an epoch of writer W (which W did not release) adds
 * `pid -> that epoch` to W's `revoked` map, and W acks an append only after a read of its row,
 * started after the append's writes completed, does not revoke that pid's epoch. One such read
 * checks every append that was waiting for it, so under load the check costs a fraction of a
 * request per append; with a per-pid check it cost one read each (a quarter of the requests).
 *
 * ## Write timestamps carry the epoch
 *
 * Every journal cell (events, events_by_key, dedup) written by epoch E gets the write timestamp
 * `EPOCH_TIME + 2E + 1`, and every deletion made for epoch E gets `EPOCH_TIME + 2E`. Cassandra
 * keeps, per cell, the value with the highest timestamp, and a deletion hides every value with a
 * lower one, whenever either arrives (a late replica write, a hint, a driver retry). So a newer
 * epoch's writes always beat an older epoch's at the same seq, and a deletion made for epoch E
 * removes every older epoch's writes in its range, including ones still on their way.
 * (EPOCH_TIME is 2^52 µs, far above wall-clock timestamps, so it also beats rows written by the
 * LWT-per-append layout this store used before.)
 *
 * ## acquire(pid): one LWT, then a head scan and a claim
 *  1. The epoch: a LOCAL_SERIAL read, then `UPDATE heads SET epoch=e+1, writer=us ... IF epoch=e`
 *     (or `INSERT ... IF NOT EXISTS`); an unknown outcome is settled by a serial read and
 *     owner_token. Then, when the epoch replaced belongs to another writer and was not released,
 *     its revocation in that writer's row (a quorum write, before step 2).
 *  2. The head H: the last event of the last non-empty bucket (LOCAL_QUORUM reads, starting at
 *     the bucket of the `seq` hint in `heads`).
 *  2b. The last append's dedup rows, written again (see "Dedup rows" below).
 *  3. The claim, for epoch E: a range deletion of seq > H in H's bucket and whole-partition
 *     deletions (events and key index) of the next bucket. Whatever an older epoch writes past H,
 *     now or later, is hidden. (Its index rows in H's own bucket stay, but `readBefore` keeps an
 *     index row only when the event at its seq carries its key.)
 *
 * ## append(pid, E, events N+1..N+k)
 *  1. Dedup: one read of `dedup (pid, key) -> seq`; a row counts only when the journal holds an
 *     event with that key at that seq. Any duplicate: nothing is written, the stored events are
 *     the answer (after a read of the epoch: a stale owner hears FENCED first).
 *  2. The seq check is local: this store knows the head of every pid it acquired or adopted
 *     (appends per pid run one at a time here), so N+1 must follow it (SEQ_CONFLICT otherwise).
 *     An epoch this store did not acquire is first compared with the stored one (FENCED when it
 *     differs, nothing written) and then adopted with a head scan.
 *  3. Writes, in this order: a claim of the next bucket before the first event lands in a new one
 *     (so a reader who reaches a bucket's end never finds an older epoch's rows in the next), then
 *     the events with their index rows (one unlogged batch per bucket: a single atomic mutation
 *     of the events' partition; buckets in seq order, so a reader sees a prefix, never a hole)
 *     and their dedup rows (in the batch for a few, first for more: see below).
 *  4. The check: a LOCAL_QUORUM read of this writer's row, shared (at most one in flight; an
 *     append waits for the next one that starts after its writes). The pid's epoch E not revoked:
 *     acked. Otherwise: FENCED, and this store forgets the pid (later appends of E are refused
 *     before writing) and removes the revocation from its row.
 *
 * ## Why an acked write is never lost, and a stale one is never acked
 * Writer A holds epoch E of a pid; B acquires E+1. A's append is acked only if its check read,
 * started after its writes completed at quorum, found E not revoked. There are three ways B's
 * acquire can go, and in each A's acked writes complete before B's head scan:
 *  - A did not release E: B writes the revocation at quorum before it scans. Had that write
 *    completed before A's check started, the two quorums would intersect and A would have seen
 *    it. So A's check started, and A's writes completed, before B's revocation completed, hence
 *    before B's scan: B's head includes them.
 *  - A released E: A's release ran after A's last append of E finished, A refuses appends of E
 *    from then on, and B's LWT read the release, so the release, and every acked write of E
 *    before it, completed before B's scan.
 *  - B is A (the same store): acquires and appends of one pid run one at a time here, so the
 *    append finished before the new acquire began.
 * Writes of A that B's scan did not see are past B's head, hence inside B's claim and hidden, and
 * A's check after them finds E revoked (or A refused them), so they are never acked. No clock is
 * involved: a writer paused for minutes (GC, SIGSTOP) between its write and its check is caught
 * by the check, and one paused before its write is hidden by the claim.
 *
 * The revocation names one pid, so a node that lost one actor to a placement disagreement
 * keeps its others; a dead node's row collects one entry per pid taken over, read by no one.
 * Mixed versions: writers of the per-pid-check layout record no writer, so they are never
 * revoked and must not run against the same keyspace as this version.
 * FENCED from an append therefore means "stop: another activation owns this id"; like a timeout,
 * it does not say whether the events were written (a new owner's scan may have included them,
 * which is why the caller's retry must carry the same dedup key).
 *
 * Gap-free seqs: every owner writes from its head + 1 on, in seq order, one append at a time;
 * rows past the head from older epochs are hidden by the claim; a seq is written by one append of
 * one epoch (a second append at N+1 fails the local check).
 *
 * Dedup rows: an event must never be readable, to a later owner's dedup check, without its dedup
 * row (a resend would then be stored twice); a dedup row without its event is ignored. An append
 * with up to DEDUP_IN_BATCH keyed events puts their dedup rows in its events' batch: one request
 * instead of two, but a batch across partitions is not atomic, so a writer that dies mid-batch
 * can leave events without their dedup rows. Only its last append: appends of a pid run one at a
 * time, and one whose batch failed is written again before the next (below). So an acquire,
 * after its head scan and before the claim, reads the last append (`append_from` of the head
 * event) and writes its dedup rows again. Larger appends write their dedup rows first, alone.
 *
 * An unknown outcome (a write timed out): the pid keeps the append as *pending*; before anything
 * else on that pid, this store writes it again (same cells, same timestamps: harmless) and treats
 * it as written, so the caller's next append must follow it. An append that spans two buckets is
 * atomic per bucket: a writer that dies between the two leaves the first part (never acked, like
 * any unknown outcome), readable with no hole.
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
  /**
   * @internal Fault injection for tests: `beforeWrite` runs when an append has passed its checks
   * and is about to write; `afterWrite` after its writes completed, before the epoch check. A
   * hook that throws is a failure at that point (a lost answer, a writer that died).
   */
  readonly faults?: {
    readonly beforeWrite?: (persistenceId: string) => Promise<void>;
    readonly afterWrite?: (persistenceId: string) => Promise<void>;
  };
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
/**
 * Dedup rows an append may carry in its events' batch: with the events' partition, 10 partitions,
 * Cassandra's default unlogged_batch_across_partitions_warn_threshold (a warning per batch above).
 */
const DEDUP_IN_BATCH = 9;
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

/** The static columns of a `heads` partition this store reads. */
interface Head {
  readonly epoch?: number;
  readonly ownerToken?: string;
  /** The writer (store object) that acquired `epoch`; none for epochs of older versions. */
  readonly writer?: string;
  /** The last epoch its writer released (see `release`). */
  readonly released?: number;
  /** A seq at or below the head, in its bucket or the one after: where a head scan starts. */
  readonly hint: number;
  /** Left by the LWT-per-append layout (an append it committed but may not have written). */
  readonly legacyIntent?: readonly JournalEvent[];
}

interface CheckWaiter {
  readonly pid: string;
  readonly owned: Owned;
  readonly resolve: () => void;
  readonly reject: (err: CodedError) => void;
}

/** What this store knows of a pid it acquired (or adopted): appends of that epoch go through it. */
interface Owned {
  readonly epoch: number;
  /** The last seq written by this epoch or found by its scan. */
  head: number;
  /** Buckets up to this one are claimed for the epoch (see the class comment). */
  claimed: number;
  /** An append whose outcome is unknown: written again before anything else on the pid. */
  pending?: readonly JournalEvent[];
  /** Released by its owner (see `release`): no more appends. */
  released?: boolean;
}

/**
 * Write timestamps of journal cells: epoch E writes at EPOCH_TIME + 2E + 1 and deletes at
 * EPOCH_TIME + 2E (see the class comment). 2^52 µs is the year 2112: above any wall-clock
 * timestamp, and with room for 2^51 epochs below 2^53, so they stay exact as JS numbers.
 */
const EPOCH_TIME = 2 ** 52;
const writeTime = (epoch: number): bigint => BigInt(EPOCH_TIME + 2 * epoch + 1);
const claimTime = (epoch: number): bigint => BigInt(EPOCH_TIME + 2 * epoch);
/** Pids whose head this store keeps; beyond that the oldest is forgotten (and adopted again if used). */
const OWNED_LIMIT = 200_000;

/** The legacy `intent` column: events as JSON with keys as decimal strings. */
type WireIntentEvent = [seq: number, data: string, key: string | null, dedup: string | null];

export class CassandraStore implements Store, Journal, KeyValueStore {
  readonly journal: Journal = this;
  readonly kv: KeyValueStore = this;
  readonly describe: string;
  private readonly ks: string;
  private readonly cl: number;
  private readonly serial: number;
  /** Pids acquired or adopted here, oldest first (a Map keeps insertion order). */
  private readonly owned = new Map<string, Owned>();
  /** This store as a writer (see the class comment). */
  private readonly writer = cassandra.types.Uuid.random();
  /** Appends whose writes completed, waiting for a writer check that starts after them. */
  private checkWaiters: CheckWaiter[] = [];
  private checkRunning = false;
  private forgetting = false;
  /** Appends per pid run one after another: the local seq check and `pending` rely on it. */
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
    this.ensureOpen();
    // In line with the pid's appends: an append of an older epoch of this store that is still in
    // flight finishes (acked or not) before the new epoch scans the head.
    return this.serialize(persistenceId, () => this.acquireNow(persistenceId, owner));
  }

  private async acquireNow(persistenceId: string, owner: string): Promise<number> {
    const token = cassandra.types.Uuid.random();
    const writer = this.writer;
    /** The head as it was before our last LWT: its writer is the one to fence if that LWT won. */
    let before: Head | undefined;
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
      if (head?.ownerToken === token.toString()) return this.claim(persistenceId, head.epoch!, head, before);
      const current = head?.epoch;
      const next = current === undefined ? 1 : current + 1;
      const statement =
        current === undefined
          ? this.lwt(`INSERT INTO ${this.ks}.heads (pid, epoch, owner, owner_token, writer, seq) VALUES (?, 1, ?, ?, ?, 0) IF NOT EXISTS`, [
              persistenceId,
              owner,
              token,
              writer,
            ])
          : this.lwt(`UPDATE ${this.ks}.heads SET epoch = ?, owner = ?, owner_token = ?, writer = ? WHERE pid = ? IF epoch = ?`, [
              BigInt(next),
              owner,
              token,
              writer,
              persistenceId,
              BigInt(current),
            ]);
      before = head;
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
      if (applied) return this.claim(persistenceId, next, head, head);
    }
  }

  /**
   * Steps 2 and 3 of acquire: the epoch is committed, so no older one can have a write acked from
   * now on; find the head and hide whatever older epochs wrote, or will write, past it.
   */
  private async claim(pid: string, epoch: number, head: Head | undefined, before: Head | undefined): Promise<number> {
    await this.revoke(pid, epoch, before);
    if (head?.legacyIntent) {
      await this.writeEvents(pid, epoch, head.legacyIntent);
      await this.exec(`UPDATE ${this.ks}.heads USING TIMESTAMP ? SET intent = null, intent_from = null WHERE pid = ?`, [claimTime(epoch), pid], true);
    }
    const last = await this.scanHead(pid, head?.hint ?? 0);
    await this.repairDedup(pid, epoch, last);
    const bucket = this.bucketOf(last + 1);
    const at = claimTime(epoch);
    await Promise.all([
      this.exec(`DELETE FROM ${this.ks}.events USING TIMESTAMP ? WHERE pid = ? AND bucket = ? AND seq > ?`, [at, pid, bucket, BigInt(last)], true),
      this.claimBuckets(pid, epoch, bucket + 1, bucket + 1),
      this.exec(`UPDATE ${this.ks}.heads USING TIMESTAMP ? SET seq = ? WHERE pid = ?`, [at, BigInt(last), pid], true),
    ]);
    this.own(pid, { epoch, head: last, claimed: bucket + 1 });
    return epoch;
  }

  /**
   * Step 1b of acquire: the writer of the epoch just replaced may still be appending (a node
   * thought dead, a paused process), and its appends are acked by its own writer check. Unless it
   * released that epoch, or it is this store, the pid is marked revoked up to that epoch in the
   * writer's row, at quorum, before the head scan (see the class comment). The element carries
   * the new epoch's claim time, so the old writer's cleanup of it can never remove a later one.
   */
  private async revoke(pid: string, epoch: number, before: Head | undefined): Promise<void> {
    const writer = before?.writer;
    if (writer === undefined || before!.epoch === undefined || before!.released === before!.epoch) return;
    if (writer === this.writer.toString()) return;
    await this.exec(`UPDATE ${this.ks}.writers USING TIMESTAMP ? SET revoked[?] = ? WHERE id = ?`, [claimTime(epoch), pid, BigInt(before!.epoch), cassandra.types.Uuid.fromString(writer)], true);
  }

  /**
   * Step 2b of acquire: the last append before the head may have been cut between its batch's
   * partitions (its dedup rows ride in the batch, and a batch across partitions is not atomic), so
   * its dedup rows are written again before this epoch appends anything. Only the last one: every
   * earlier append's batch completed before the next began, or was written again (`settle`).
   */
  private async repairDedup(pid: string, epoch: number, last: number): Promise<void> {
    if (last === 0) return;
    const bucket = this.bucketOf(last);
    const head = (await this.query(`SELECT append_from FROM ${this.ks}.events WHERE pid = ? AND bucket = ? AND seq = ?`, [pid, bucket, BigInt(last)], 1)).first();
    const from = head?.['append_from'];
    if (from === null || from === undefined) return; // written by a version that wrote dedup rows first
    const at = writeTime(epoch);
    // The bucket's part only: an append's batches go one per bucket, in order, each complete
    // before the next, so an earlier bucket's part was whole.
    for (let cursor = Math.max(toNumber(from), this.bucketEnd(bucket - 1) + 1); cursor <= last; cursor += PAGE) {
      const upTo = Math.min(last, cursor + PAGE - 1);
      const rs = await this.query(`SELECT seq, dedup FROM ${this.ks}.events WHERE pid = ? AND bucket = ? AND seq >= ? AND seq <= ?`, [pid, bucket, BigInt(cursor), BigInt(upTo)], upTo - cursor + 1);
      await Promise.all(
        rs.rows
          .filter((r) => typeof r['dedup'] === 'string')
          .map((r) => this.exec(`INSERT INTO ${this.ks}.dedup (pid, dedup_key, seq) VALUES (?, ?, ?) USING TIMESTAMP ?`, [pid, r['dedup'], r['seq'], at], true)),
      );
    }
  }

  /** Hides every older epoch's rows in whole buckets (their events and index rows). */
  private async claimBuckets(pid: string, epoch: number, from: number, to: number): Promise<void> {
    const at = claimTime(epoch);
    const statements: { query: string; params: Params }[] = [];
    for (let b = from; b <= to; b++) {
      statements.push({ query: `DELETE FROM ${this.ks}.events USING TIMESTAMP ? WHERE pid = ? AND bucket = ?`, params: [at, pid, b] });
      statements.push({ query: `DELETE FROM ${this.ks}.events_by_key USING TIMESTAMP ? WHERE pid = ? AND bucket = ?`, params: [at, pid, b] });
    }
    await Promise.all(statements.map((st) => this.exec(st.query, st.params, true)));
  }

  private own(pid: string, owned: Owned): void {
    this.owned.delete(pid);
    if (this.owned.size >= OWNED_LIMIT) this.owned.delete(this.owned.keys().next().value!);
    this.owned.set(pid, owned);
  }

  /**
   * The last seq of a journal: the last event of the last non-empty bucket, starting from the
   * hint's bucket (at most one past the last non-empty one, or any bucket at or before it).
   */
  private async scanHead(pid: string, hint: number): Promise<number> {
    let bucket = this.bucketOf(Math.max(1, hint));
    let found = 0;
    for (;;) {
      const rs = await this.query(`SELECT seq FROM ${this.ks}.events WHERE pid = ? AND bucket = ? ORDER BY seq DESC LIMIT 1`, [pid, bucket], 1);
      const row = rs.first();
      if (row) {
        found = toNumber(row['seq']);
        if (found !== this.bucketEnd(bucket)) return found;
        bucket += 1;
      } else if (found > 0 || bucket === 0) {
        return found;
      } else {
        bucket -= 1;
      }
    }
  }

  async append(persistenceId: string, epoch: number, events: readonly JournalEvent[]): Promise<AppendResult> {
    this.ensureOpen();
    validateEvents(events);
    return this.serialize(persistenceId, () => this.appendNow(persistenceId, epoch, events));
  }

  async read(persistenceId: string, afterSeq: number, limit: number): Promise<JournalEvent[]> {
    await this.settlePending(persistenceId);
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
    await this.settlePending(persistenceId);
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
    const out: JournalEvent[] = [];
    let oldest: { key: bigint; bucket: number } | undefined;
    for (const dirRow of directory.rows) {
      const bucket = dirRow['bucket'] as number;
      let last = bound;
      while (out.length < limit) {
        const want = Math.min(limit - out.length, PAGE);
        const rs =
          last === undefined
            ? await this.query(`SELECT key, seq FROM ${this.ks}.events_by_key WHERE pid = ? AND bucket = ? LIMIT ?`, [persistenceId, bucket, want], want)
            : await this.query(`SELECT key, seq FROM ${this.ks}.events_by_key WHERE pid = ? AND bucket = ? AND key < ? LIMIT ?`, [persistenceId, bucket, last, want], want);
        const page = rs.rows.map((row) => ({ key: row['key'] as bigint, seq: toNumber(row['seq']) }));
        const bySeq = new Map((await this.fetchSeqs(persistenceId, page.map((f) => f.seq))).map((e) => [e.seq, e]));
        for (const f of page) {
          // An index row counts only when its event carries its key: rows an older epoch wrote
          // past the head it lost point at seqs that are hidden or hold another event now.
          const e = bySeq.get(f.seq);
          if (e?.key === f.key) out.push(e);
        }
        if (page.length > 0) {
          last = page[page.length - 1]!.key;
          oldest = { key: last, bucket };
        }
        if (page.length < want) break;
      }
      if (out.length >= limit) break;
    }
    if (oldest) this.rememberHint(persistenceId, oldest.key, oldest.bucket);
    return out;
  }

  async highestSeq(persistenceId: string): Promise<number> {
    await this.settlePending(persistenceId);
    const head = await this.readHead(persistenceId, false);
    if (!head) return 0;
    return this.scanHead(persistenceId, head.hint);
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
    const owned = await this.ownedFor(pid, epoch);
    await this.settle(pid, owned);
    if (events.length === 0) {
      await this.checkWriter(pid, owned);
      return { ok: true };
    }
    const from = events[0]!.seq;
    const to = from + events.length - 1;

    // Dedup is a read, not a claim: every event's dedup row is written before the event.
    const duplicates = await this.storedDuplicates(pid, events);
    if (duplicates.length > 0) {
      // Like SQLite, a stale owner is told it is fenced before it is told anything else.
      await this.checkWriter(pid, owned);
      return { ok: false, duplicates };
    }
    if (from !== owned.head + 1) throw new CodedError(StoreCodes.SEQ_CONFLICT, `${pid}: expected seq ${owned.head + 1}, got ${from}`);

    await this.fault('beforeWrite', pid);
    owned.pending = events;
    await this.writeEvents(pid, epoch, events, owned);
    await this.fault('afterWrite', pid);
    // The writes are done (so on any failure from here the append counts as written, see
    // settle); only the check decides whether they may be acked.
    await this.checkWriter(pid, owned);
    owned.head = to;
    owned.pending = undefined;
    return { ok: true };
  }

  /** A test's fault hook; what it throws is a failure of the store at that point. */
  private async fault(at: 'beforeWrite' | 'afterWrite', pid: string): Promise<void> {
    try {
      await this.options.faults?.[at]?.(pid);
    } catch (err) {
      throw toStoreError(err);
    }
  }

  /**
   * This store's record of the pid for `epoch`. An epoch it did not acquire (another store
   * object, a restarted process, or one never handed out) is compared with the stored one before
   * anything is written, then adopted with a head scan.
   */
  private async ownedFor(pid: string, epoch: number): Promise<Owned> {
    const known = this.owned.get(pid);
    if (known?.epoch === epoch) {
      if (known.released) throw fenced(pid, epoch, undefined, 'its owner released it');
      return known;
    }
    const head = await this.readHead(pid, false);
    if (head?.epoch !== epoch) throw fenced(pid, epoch, head?.epoch);
    // Only this writer's own epochs, and not one it released: another writer's appends are
    // acked by that writer's check, and an acquire after a release fences no one.
    if (head.writer !== this.writer.toString() || head.released === epoch) throw fenced(pid, epoch, head.epoch, 'it was released or belongs to another writer');
    const last = await this.scanHead(pid, head.hint);
    const adopted: Owned = { epoch, head: last, claimed: this.bucketOf(last + 1) };
    this.own(pid, adopted);
    return adopted;
  }

  /**
   * Step 4: FENCED unless a read of this writer's row, started after the caller's writes
   * completed, finds it unfenced. Reads are shared: one is in flight at a time, and every append
   * that finished writing meanwhile waits for the next one, so under load one read checks the
   * appends of many pids (a read already in flight may have started before their writes ended,
   * so it cannot count for them).
   */
  private checkWriter(pid: string, owned: Owned): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.checkWaiters.push({ pid, owned, resolve, reject });
      if (!this.checkRunning) void this.runChecks();
    });
  }

  private async runChecks(): Promise<void> {
    this.checkRunning = true;
    while (this.checkWaiters.length > 0) {
      const waiters = this.checkWaiters;
      this.checkWaiters = [];
      let revoked: Map<string, bigint>;
      try {
        const rs = await this.query(`SELECT revoked FROM ${this.ks}.writers WHERE id = ?`, [this.writer], 1);
        revoked = toRevoked(rs.first()?.['revoked']);
      } catch (err) {
        const coded = toStoreError(err);
        for (const w of waiters) w.reject(coded);
        continue;
      }
      // Every revoked epoch is dropped here before any verdict, and a verdict needs the pid's
      // record to be the one the append wrote under: a revocation seen once stays in force for
      // appends still on their way, even after forgetRevoked removed it from the row. (A pid
      // evicted past OWNED_LIMIT meanwhile is FENCED too: safe, its owner starts over.)
      for (const [pid, upTo] of revoked) {
        const owned = this.owned.get(pid);
        if (owned && BigInt(owned.epoch) <= upTo) this.owned.delete(pid);
      }
      for (const w of waiters) {
        if (this.owned.get(w.pid) === w.owned) w.resolve();
        else w.reject(fenced(w.pid, w.owned.epoch, undefined, 'another writer acquired it'));
      }
      if (revoked.size > 0 && !this.forgetting) {
        this.forgetting = true;
        void this.forgetRevoked(revoked).finally(() => (this.forgetting = false));
      }
    }
    this.checkRunning = false;
  }

  /**
   * Revocations this writer has seen (and acted on: runChecks dropped their epochs, so later
   * appends of them are refused by `ownedFor`) are removed so checks stay small. Each removal
   * has the timestamp of the revocation it removes: a later one, for a later epoch, survives it.
   */
  private async forgetRevoked(revoked: ReadonlyMap<string, bigint>): Promise<void> {
    for (const [pid, upTo] of revoked) {
      // Best effort: one left behind is read again by the next check and removed then.
      try {
        await this.exec(`DELETE revoked[?] FROM ${this.ks}.writers USING TIMESTAMP ? WHERE id = ?`, [pid, claimTime(Number(upTo) + 1), this.writer], true);
      } catch {
        return;
      }
    }
  }

  async release(persistenceId: string, epoch: number): Promise<void> {
    this.ensureOpen();
    await this.serialize(persistenceId, async () => {
      const owned = this.owned.get(persistenceId);
      if (owned?.epoch !== epoch) return;
      // An append of unknown outcome stays this writer's to settle: no release, so the next
      // owner fences this writer instead (always safe, only dearer).
      if (owned.pending) return;
      // Kept, marked: an append of this epoch after its release is refused here (its owner said
      // it was done), even while the write below is still on its way.
      owned.released = true;
      await this.exec(`UPDATE ${this.ks}.heads USING TIMESTAMP ? SET released = ? WHERE pid = ?`, [writeTime(epoch), BigInt(epoch), persistenceId], true);
    });
  }

  /**
   * Writes an append whose outcome is unknown again, and from then on counts it as written: its
   * cells may be in Cassandra, and writing other events at its seqs under the same timestamp
   * would mix the two, cell by cell.
   */
  private async settle(pid: string, owned: Owned): Promise<void> {
    const pending = owned.pending;
    if (!pending) return;
    await this.writeEvents(pid, owned.epoch, pending, owned);
    owned.head = Math.max(owned.head, pending[pending.length - 1]!.seq);
    owned.pending = undefined;
  }

  /** Before a read on this store: an append of ours with an unknown outcome is settled first. */
  private async settlePending(pid: string): Promise<void> {
    this.ensureOpen();
    const owned = this.owned.get(pid);
    if (owned?.pending) await this.serialize(pid, () => this.settle(pid, owned));
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
   * Step 3: writes events of `epoch` (claims of new buckets, dedup rows, then events with their
   * index rows). The two event tables share the partition key, so one unlogged batch per bucket
   * is one atomic mutation. Batches go in seq order, one after another, so a reader sees a prefix
   * of the append, never a hole in it.
   */
  private async writeEvents(pid: string, epoch: number, events: readonly JournalEvent[], owned?: Owned): Promise<void> {
    const at = writeTime(epoch);
    const lastBucket = this.bucketOf(events[events.length - 1]!.seq);
    if (owned && lastBucket + 1 > owned.claimed) {
      // The next bucket is claimed before any event lands in this one, so a reader that reaches
      // this bucket's end finds no older epoch's rows in the next.
      await Promise.all([
        this.claimBuckets(pid, epoch, owned.claimed + 1, lastBucket + 1),
        this.exec(`UPDATE ${this.ks}.heads USING TIMESTAMP ? SET seq = ? WHERE pid = ?`, [claimTime(epoch), BigInt(lastBucket * this.bucketSize + 1), pid], true),
      ]);
      owned.claimed = lastBucket + 1;
    }
    const keyed = new Set(events.filter((e) => e.key !== undefined).map((e) => this.bucketOf(e.seq)));
    // A few dedup rows ride in the events' batch (one request; see the class comment for the
    // repair that makes that safe); more than that are written first, each its own partition,
    // so that a batch stays under Cassandra's warning for batches across many partitions.
    const withKeys = events.filter((e) => e.dedupKey !== undefined);
    const dedupInBatch = withKeys.length <= DEDUP_IN_BATCH;
    await Promise.all([
      ...(dedupInBatch ? [] : withKeys)
        .map((e) => this.exec(`INSERT INTO ${this.ks}.dedup (pid, dedup_key, seq) VALUES (?, ?, ?) USING TIMESTAMP ?`, [pid, e.dedupKey!, BigInt(e.seq), at], true)),
      ...[...keyed].filter((b) => !this.knownKeyBuckets.has(`${pid}\u0000${b}`)).map((b) => this.exec(`INSERT INTO ${this.ks}.key_buckets (pid, bucket) VALUES (?, ?)`, [pid, b], true)),
    ]);
    for (const b of keyed) {
      if (this.knownKeyBuckets.size >= HINT_LIMIT * 10) this.knownKeyBuckets.clear();
      this.knownKeyBuckets.add(`${pid}\u0000${b}`);
    }
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
        query: `INSERT INTO ${this.ks}.events (pid, bucket, seq, data, key, dedup, append_from) VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`,
        params: [pid, bucket, BigInt(e.seq), text, e.key ?? null, e.dedupKey ?? null, BigInt(events[0]!.seq), at],
      });
      if (dedupInBatch && e.dedupKey !== undefined) {
        batch.push({ query: `INSERT INTO ${this.ks}.dedup (pid, dedup_key, seq) VALUES (?, ?, ?) USING TIMESTAMP ?`, params: [pid, e.dedupKey, BigInt(e.seq), at] });
      }
      if (e.key !== undefined) {
        batch.push({ query: `INSERT INTO ${this.ks}.events_by_key (pid, bucket, key, seq) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`, params: [pid, bucket, e.key, BigInt(e.seq), at] });
      }
    }
    await flush();
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
      `SELECT epoch, owner_token, writer, released, seq, intent FROM ${this.ks}.heads WHERE pid = ? LIMIT 1`,
      [pid],
      1,
      serial ? this.serial : this.cl,
    );
    const row = rs.first();
    if (!row || row['epoch'] === null || row['epoch'] === undefined) return undefined;
    const intentText = row['intent'] as string | null;
    return {
      epoch: toNumber(row['epoch']),
      hint: toNumber(row['seq'] ?? 0n),
      ...(row['owner_token'] ? { ownerToken: String(row['owner_token']) } : {}),
      ...(row['writer'] ? { writer: String(row['writer']) } : {}),
      ...(row['released'] !== null && row['released'] !== undefined ? { released: toNumber(row['released']) } : {}),
      ...(intentText ? { legacyIntent: decodeIntent(intentText) } : {}),
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

function fenced(pid: string, epoch: number, current: number | undefined, why?: string): CodedError {
  return new CodedError(StoreCodes.FENCED, `epoch ${epoch} of ${pid} is no longer the owner (${why ?? `now ${current ?? 'none'}`})`);
}

/** The `revoked` map of a writer row, as the driver returns it (an object, or null when empty). */
function toRevoked(value: unknown): Map<string, bigint> {
  const out = new Map<string, bigint>();
  if (value === null || value === undefined) return out;
  const entries = value instanceof Map ? [...(value as Map<string, unknown>)] : Object.entries(value as Record<string, unknown>);
  for (const [pid, epoch] of entries) out.set(pid, typeof epoch === 'bigint' ? epoch : BigInt(String(epoch)));
  return out;
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
