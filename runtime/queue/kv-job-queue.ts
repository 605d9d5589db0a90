import { randomUUID } from 'node:crypto';
import type { KeyValueStore, KeyValueWrite } from '../storage/index.ts';
import type { DeadJob, DurableJobQueue, JobLease, QueuedJob } from './job-queue.ts';

export interface KvJobQueueOptions {
  /** Names the tables: `<name>_queue`, `<name>_claim`, `<name>_dead`. */
  readonly name: string;
  /** How long a claim holds a job (default 30 s): past every step a holder takes, so a live holder never loses it. */
  readonly leaseMs?: number;
  /** Written on claims for whoever reads the tables (a node id); random by default. */
  readonly owner?: string;
}

/** Queue partitions: every worker scans all of them, so each stays small. */
const SHARDS = 16;
/** Jobs read per partition per claim round. */
const SCAN_PAGE = 500;

/** A queued job (table `<name>_queue`, partition shardOf(id), key id). */
interface QueueRow {
  readonly body: string;
  readonly due_ms: number;
}

/**
 * One link of a job's lease chain (table `<name>_claim`, partition = job id, key = link number).
 * The holder owns the job until `until_ms`; `attempts`, `marks` and `last_error` carry over to
 * the next link, whoever creates it.
 */
interface ClaimLink {
  readonly owner: string;
  readonly until_ms: number;
  readonly attempts: number;
  readonly marks: readonly string[];
  readonly last_error?: string;
}

interface DeadRow {
  readonly body: string;
  readonly attempts: number;
  readonly marks: readonly string[];
  readonly last_error: string;
  readonly dead_at_ms: number;
}

/** Link keys sort as numbers. */
const linkKey = (n: number): string => String(n).padStart(8, '0');

/** The partition of a job id (FNV-1a). */
function shardOf(id: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return `s${(h >>> 0) % SHARDS}`;
}

/**
 * The job queue in the store the nodes share (SQLite or Cassandra), for a cluster without Redis.
 *
 * Claims are a lease chain per job: link n is created with putIfAbsent, so of two workers racing
 * for it one wins, and link n+1 may be tried only once link n's `until_ms` has passed. The holder
 * ends the lease by rewriting its own link (`defer`: a later `until_ms`, so the next link, by any
 * worker, is the retry) or by deleting the job with its chain in one write (`finish`, `bury`). A
 * holder killed mid-lease leaves a link that lapses after `leaseMs`; the next claim carries its
 * attempts and marks. Every step re-reads the store, never memory, so a restarted node, or
 * another one, takes over. Due jobs are found by scanning every partition (a page each) per
 * round: fine for a push queue of thousands, not for millions waiting (use Redis then).
 */
export class KvJobQueue implements DurableJobQueue {
  private readonly tables: { readonly queue: string; readonly claim: string; readonly dead: string };
  private readonly leaseMs: number;
  private readonly owner: string;
  /** The link each lease this worker holds ends in, as written: marks and defers rewrite it. */
  private readonly held = new Map<string, ClaimLink>();
  private firstShard = 0;
  private seen = 0;

  constructor(
    private readonly kv: KeyValueStore,
    o: KvJobQueueOptions,
  ) {
    this.tables = { queue: `${o.name}_queue`, claim: `${o.name}_claim`, dead: `${o.name}_dead` };
    this.leaseMs = o.leaseMs ?? 30_000;
    this.owner = o.owner ?? randomUUID();
  }

  get depth(): number {
    return this.seen;
  }

  async put(job: QueuedJob): Promise<void> {
    await this.kv.write([this.rowWrite(job)]);
  }

  async cancel(id: string): Promise<void> {
    await this.kv.write([{ op: 'delete', table: this.tables.queue, partition: shardOf(id), key: id }]);
  }

  async claim(max: number): Promise<JobLease[]> {
    const now = Date.now();
    const out: JobLease[] = [];
    let seen = 0;
    // Starting one partition further each round: a full round never keeps the same ones waiting.
    const start = this.firstShard++ % SHARDS;
    for (let i = 0; i < SHARDS; i++) {
      const rows = await this.kv.list(this.tables.queue, `s${(start + i) % SHARDS}`, SCAN_PAGE);
      seen += rows.length;
      if (out.length >= max) continue; // still counting the depth
      const due = rows.filter((r) => (JSON.parse(r.value) as QueueRow).due_ms <= now);
      for (let j = 0; j < due.length && out.length < max; ) {
        const batch = due.slice(j, j + (max - out.length));
        j += batch.length;
        for (const lease of await Promise.all(batch.map((r) => this.tryClaim(r.key, now)))) if (lease) out.push(lease);
      }
    }
    this.seen = seen;
    return out;
  }

  async mark(lease: JobLease, mark: string): Promise<void> {
    const link = this.linkOf(lease);
    if (link.marks.includes(mark)) return;
    await this.rewrite(lease, { ...link, marks: [...link.marks, mark] });
  }

  async defer(lease: JobLease, untilMs: number, failure?: string): Promise<void> {
    const link = this.linkOf(lease);
    const next: ClaimLink = failure === undefined ? { ...link, until_ms: untilMs } : { ...link, until_ms: untilMs, attempts: link.attempts + 1, last_error: failure };
    await this.rewrite(lease, next);
    this.held.delete(heldKey(lease));
  }

  async finish(lease: JobLease): Promise<void> {
    await this.kv.write(this.endWrites(lease));
    this.held.delete(heldKey(lease));
  }

  async bury(lease: JobLease, failure: string): Promise<void> {
    const link = this.linkOf(lease);
    const row: DeadRow = { body: lease.body, attempts: link.attempts + 1, marks: link.marks, last_error: failure, dead_at_ms: Date.now() };
    await this.kv.write([{ op: 'put', table: this.tables.dead, partition: shardOf(lease.id), key: lease.id, value: JSON.stringify(row) }, ...this.endWrites(lease)]);
    this.held.delete(heldKey(lease));
  }

  async dead(): Promise<DeadJob[]> {
    const out: DeadJob[] = [];
    for (let s = 0; s < SHARDS; s++) {
      for (const r of await this.kv.list(this.tables.dead, `s${s}`)) out.push(deadJobOf(r.key, JSON.parse(r.value) as DeadRow));
    }
    return out.sort((a, b) => a.deadAtMs - b.deadAtMs || a.id.localeCompare(b.id));
  }

  async revive(id: string, as: QueuedJob): Promise<boolean> {
    const raw = await this.kv.get(this.tables.dead, shardOf(id), id);
    if (raw === undefined) return false;
    const d = JSON.parse(raw) as DeadRow;
    // A lapsed first link carries the marks to the new job's first claim (link 2).
    const link: ClaimLink = { owner: this.owner, until_ms: 0, attempts: 0, marks: d.marks };
    await this.kv.write([
      this.rowWrite(as),
      { op: 'put', table: this.tables.claim, partition: as.id, key: linkKey(1), value: JSON.stringify(link) },
      { op: 'delete', table: this.tables.dead, partition: shardOf(id), key: id },
    ]);
    return true;
  }

  async close(): Promise<void> {
    this.held.clear();
  }

  private async tryClaim(id: string, now: number): Promise<JobLease | undefined> {
    const chain = await this.kv.list(this.tables.claim, id);
    const last = chain[chain.length - 1];
    const prev = last === undefined ? undefined : (JSON.parse(last.value) as ClaimLink);
    if (prev && prev.until_ms > now) return undefined; // held, or waiting for its next attempt
    const n = last === undefined ? 1 : Number(last.key) + 1;
    const link: ClaimLink = {
      owner: this.owner,
      until_ms: now + this.leaseMs,
      attempts: prev?.attempts ?? 0,
      marks: prev?.marks ?? [],
      ...(prev?.last_error !== undefined ? { last_error: prev.last_error } : {}),
    };
    const { created } = await this.kv.putIfAbsent(this.tables.claim, id, linkKey(n), JSON.stringify(link));
    if (!created) return undefined; // another worker won this link
    // Re-read under the claim: the body may have been replaced, or the job cancelled.
    const raw = await this.kv.get(this.tables.queue, shardOf(id), id);
    if (raw === undefined) {
      await this.kv.write(chainDeletes(this.tables.claim, id, n));
      return undefined;
    }
    const row = JSON.parse(raw) as QueueRow;
    const lease: JobLease = { id, body: row.body, attempts: link.attempts, marks: link.marks, token: String(n), ...(link.last_error !== undefined ? { lastError: link.last_error } : {}) };
    this.held.set(heldKey(lease), link);
    return lease;
  }

  private linkOf(lease: JobLease): ClaimLink {
    const link = this.held.get(heldKey(lease));
    if (!link) throw new Error(`job ${lease.id} is not held by this worker (its lease was ended already)`);
    return link;
  }

  private async rewrite(lease: JobLease, link: ClaimLink): Promise<void> {
    await this.kv.write([{ op: 'put', table: this.tables.claim, partition: lease.id, key: linkKey(Number(lease.token)), value: JSON.stringify(link) }]);
    this.held.set(heldKey(lease), link);
  }

  /** The job's row and its whole chain, in one write. */
  private endWrites(lease: JobLease): KeyValueWrite[] {
    return [{ op: 'delete', table: this.tables.queue, partition: shardOf(lease.id), key: lease.id }, ...chainDeletes(this.tables.claim, lease.id, Number(lease.token))];
  }

  private rowWrite(job: QueuedJob): KeyValueWrite {
    const row: QueueRow = { body: job.body, due_ms: job.dueMs };
    return { op: 'put', table: this.tables.queue, partition: shardOf(job.id), key: job.id, value: JSON.stringify(row) };
  }
}

const heldKey = (lease: JobLease): string => `${lease.id}\u0000${lease.token}`;

function chainDeletes(table: string, id: string, upTo: number): KeyValueWrite[] {
  return Array.from({ length: upTo }, (_, i): KeyValueWrite => ({ op: 'delete', table, partition: id, key: linkKey(i + 1) }));
}

function deadJobOf(id: string, d: DeadRow): DeadJob {
  return { id, body: d.body, attempts: d.attempts, marks: d.marks, lastError: d.last_error, deadAtMs: d.dead_at_ms };
}
