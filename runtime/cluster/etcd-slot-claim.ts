import { randomBytes } from 'node:crypto';
import type { Etcd3, IKeyValue, ITxnResponse } from 'etcd3';
import { silentLogger, type Logger } from '../log.ts';
import type { LeaseBound } from './etcd-membership.ts';
import { SlotClaimError } from './slot-claim-error.ts';
import { chooseSlot, type SlotPool } from './slot-choice.ts';

export interface EtcdSlotClaimOptions {
  /** Preferably from `createEtcdClient`; never closed here. */
  readonly client: Etcd3;
  /**
   * Where the pool lives, e.g. `/parley/prod/node-numbers`: `<prefix>/held/<slot>` bound to the
   * member's lease, `<prefix>/reserved/<slot>` kept for good.
   */
  readonly prefix: string;
  /** Our name in the pool (the node id): what a refused claimer is told holds the slot. */
  readonly holder: string;
  /** Slots are `0..size-1`. */
  readonly size: number;
  /** A configured slot; unset: the lowest free one. */
  readonly wanted?: number;
  /** How long after a slot's last reservation (by the claimer's clock) it may be claimed automatically. */
  readonly reuseGapMs: number;
  /** How far each reservation reaches past the clock (and past `inUseUntil()`). */
  readonly reserveAheadMs: number;
  /** Time between reservations while they succeed. Default 1 s. */
  readonly refreshIntervalMs?: number;
  /** The highest value the holder has used so far (Unix ms); reservations stay ahead of it. */
  readonly inUseUntil?: () => number;
  /** Deadline of each etcd call made here. Default 3 s. */
  readonly callTimeoutMs?: number;
  readonly logger?: Logger;
}

/** A slot this member took: `floorMs` is where its values start, `reservedUntilMs` how far they may go. */
export interface SlotGrant {
  readonly slot: number;
  readonly floorMs: number;
  readonly reservedUntilMs: number;
  /** From the start of the claim to its commit. */
  readonly tookMs: number;
}

interface Claim {
  readonly slot: number;
  /** The exact value of our held key; a refresh applies only while it is still there. */
  readonly heldValue: string;
  readonly token: string;
  /** Mod revision of the reservation key as of our last write or read of it. */
  reservationRevision: number;
  /** Our latest acknowledged reservation. */
  reservedUntilMs: number;
}

/** A slot as listed: the record `chooseSlot` reads, plus what our transactions compare against. */
interface ListedSlot {
  holder?: string;
  reservedUntilMs?: number;
  reservedBy?: string;
  heldValue?: string;
  reservationRevision: number;
  reservationToken?: string;
}

interface ListedPool extends SlotPool {
  readonly slots: ReadonlyMap<number, ListedSlot>;
}

const RETRY_MS = 250;
/**
 * Claimers that start together all go for the lowest free slot and one wins each round, so the
 * last of N needs N attempts: allow as many as there are slots, within a time bound.
 */
const CLAIM_DEADLINE_MS = 30_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A small integer slot unique among live members, claimed in etcd, with a reuse gap and a
 * published reservation. The holder promises to use values (times, Unix ms) only up to its last
 * acknowledged reservation, and refreshes the reservation about every second to stay
 * `reserveAheadMs` ahead of the clock; a new holder of the slot uses values above the previous
 * holder's last reservation plus the reuse gap. So two holders of one slot, one after the other,
 * never use the same value, whatever their clocks say:
 *
 * - The claim is one transaction: the held key must not exist (create revision 0) and the
 *   reservation key must be exactly as listed (same mod revision); then both are written, the
 *   held key under the member's lease. Two claimers of one slot cannot both win.
 * - A reservation is written only by a transaction that checks our held key is still there with
 *   our value and the reservation key is as we last saw it. Once our lease lapsed (held key gone)
 *   we cannot raise it any more, and a write of ours that timed out but applied later cannot
 *   lower it. So the reservation a claimer reads, checked unchanged in its own transaction, is
 *   at least every value the previous holder was ever allowed to use.
 * - Hence `floorMs` (that reservation plus the gap) lies above all of them. An automatic claim
 *   also waits until the claimer's own clock has passed the floor, so its values come from its
 *   clock rather than from the floor; a wanted slot is taken at once when no live member holds
 *   it, its values held above the floor until the clock catches up.
 *
 * This rests on etcd keeping its data. An etcd that lost it, or was restored from an older
 * backup, has forgotten reservations; a slot without one is free with floor 0, and only the
 * clocks (and the gap, when the record is merely a little stale) keep its values apart.
 *
 * `attach` runs inside the membership's registration (see `LeaseBound`), so a node holds its slot
 * under the same lease as its member record, before that record is written, and again under
 * every new lease. After a lease was lost it first takes its own slot back (held key gone,
 * reservation still its own); if someone else took it meanwhile it claims another one.
 */
export class EtcdSlotClaim implements LeaseBound {
  private readonly client: Etcd3;
  private readonly logger: Logger;
  private readonly prefix: string;
  private readonly refreshIntervalMs: number;
  private readonly callTimeoutMs: number;
  private readonly inUseUntil: () => number;
  private readonly claimListeners = new Set<(grant: SlotGrant) => void>();
  private readonly reserveListeners = new Set<(untilMs: number) => void>();
  private claim: Claim | undefined;
  /** Our held key is gone (lease lapsed): no reservation until the next attach. */
  private lost = false;
  /** Bumped by every claim, so a refresh that raced one drops its result. */
  private generation = 0;
  private requestedMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private refreshing = false;
  private refreshAgain = false;
  private closed = false;

  constructor(private readonly o: EtcdSlotClaimOptions) {
    if (!Number.isInteger(o.size) || o.size < 1) throw new RangeError(`size must be a positive integer, got ${o.size}`);
    if (o.wanted !== undefined && !(Number.isInteger(o.wanted) && o.wanted >= 0 && o.wanted < o.size)) throw new RangeError(`wanted slot must be 0..${o.size - 1}, got ${o.wanted}`);
    if (!(o.reuseGapMs >= 0) || !(o.reserveAheadMs > 0)) throw new RangeError('reuseGapMs must be >= 0 and reserveAheadMs > 0');
    this.client = o.client;
    this.logger = o.logger ?? silentLogger();
    this.prefix = o.prefix.replace(/\/+$/, '');
    this.refreshIntervalMs = o.refreshIntervalMs ?? 1_000;
    if (!(this.refreshIntervalMs < o.reserveAheadMs)) throw new RangeError('refreshIntervalMs must be below reserveAheadMs, or reservations run out between refreshes');
    this.callTimeoutMs = o.callTimeoutMs ?? 3_000;
    this.inUseUntil = o.inUseUntil ?? (() => 0);
  }

  /** The slot held now (undefined before the first claim). */
  get slot(): number | undefined {
    return this.claim?.slot;
  }

  /** Our latest acknowledged reservation (Unix ms); values above it are not ours to use. */
  get reservedUntilMs(): number | undefined {
    return this.claim?.reservedUntilMs;
  }

  /** Called on every new claim: the first one, and a different slot after ours was taken. */
  onClaim(listener: (grant: SlotGrant) => void): () => void {
    this.claimListeners.add(listener);
    return () => this.claimListeners.delete(listener);
  }

  /** Called with each newly acknowledged reservation. */
  onReserve(listener: (untilMs: number) => void): () => void {
    this.reserveListeners.add(listener);
    return () => this.reserveListeners.delete(listener);
  }

  /** Asks for a reservation reaching at least `untilMs` soon (a value ran past the current one). */
  reserve(untilMs: number): void {
    if (untilMs > this.requestedMs) this.requestedMs = untilMs;
    if (this.claim !== undefined && !this.lost) this.scheduleRefresh(0);
  }

  /**
   * Before registering: fails at once (SLOT_HELD, SLOTS_EXHAUSTED) if no claim could succeed.
   * While the wanted slot is still held under our own name, by a previous run of this member
   * whose lease has not lapsed yet, waits for it up to `ownWaitMs`.
   */
  async precheck(ownWaitMs: number): Promise<void> {
    const deadline = Date.now() + ownWaitMs;
    let waiting = false;
    for (;;) {
      const pool = await this.list(this.o.wanted);
      const choice = chooseSlot(pool, this.o.wanted);
      if (choice.kind === 'take') return;
      if (choice.kind === 'exhausted') throw this.exhausted(choice);
      if (choice.holder !== this.o.holder || Date.now() >= deadline) {
        const own = choice.holder === this.o.holder ? ` (still, after waiting ${ownWaitMs} ms for a previous run's lease to lapse: is another process running as ${this.o.holder}?)` : '';
        throw new SlotClaimError('SLOT_HELD', `slot ${choice.slot} of ${this.prefix} is held by live member ${choice.holder}${own}`, { slot: choice.slot, holder: choice.holder, size: this.o.size });
      }
      if (!waiting) this.logger.info({ slot: choice.slot, holder: choice.holder }, 'slot still held under our name by a previous run; waiting for its lease to lapse');
      waiting = true;
      await sleep(RETRY_MS);
    }
  }

  /** Claims (or takes back) a slot under `leaseId`; see the class doc. Throws SlotClaimError. */
  async attach(leaseId: string): Promise<void> {
    if (this.closed) throw new SlotClaimError('CLAIM_FAILED', 'slot claim is closed');
    const startedAt = performance.now();
    const maxAttempts = this.o.size + 8;
    for (let attempt = 0; attempt < maxAttempts && performance.now() - startedAt < CLAIM_DEADLINE_MS; attempt++) {
      // After a lost race, a few ms of jitter so the losers do not list and commit in lockstep.
      if (attempt > 0) await sleep(Math.random() * 10);
      const mine = this.claim;
      if (mine !== undefined) {
        const listed = (await this.list(mine.slot)).slots.get(mine.slot);
        if (listed?.heldValue === mine.heldValue) {
          // Still there under an older lease (it has not expired yet): move it to the new one.
          const res = await this.txn((c) => c.if(this.heldKey(mine.slot), 'Value', '==', mine.heldValue).then(c.put(this.heldKey(mine.slot)).value(mine.heldValue).lease(leaseId)));
          if (res.succeeded) return this.retaken(mine.slot, startedAt);
          continue;
        }
        if (listed?.holder === undefined && (listed === undefined || listed.reservationToken === undefined || listed.reservationToken === mine.token)) {
          // Our lease lapsed and nobody claimed the slot since: our values go on where they were.
          const until = Math.max(this.nextReservation(), mine.reservedUntilMs, listed?.reservedUntilMs ?? 0);
          const next = await this.commitClaim(mine.slot, leaseId, listed?.reservationRevision ?? 0, until);
          if (next) {
            this.claim = next;
            this.retaken(mine.slot, startedAt);
            this.publishReserved(until);
            return;
          }
          continue;
        }
        this.logger.warn({ slot: mine.slot, holder: listed?.holder ?? listed?.reservedBy }, 'our slot was claimed by another member while our lease was lost; claiming another');
        this.claim = undefined;
      }
      const pool = await this.list(this.o.wanted);
      const choice = chooseSlot(pool, this.o.wanted);
      if (choice.kind === 'exhausted') throw this.exhausted(choice);
      if (choice.kind === 'held') throw new SlotClaimError('SLOT_HELD', `slot ${choice.slot} of ${this.prefix} is held by live member ${choice.holder}`, { slot: choice.slot, holder: choice.holder, size: this.o.size });
      const listed = pool.slots.get(choice.slot);
      // Our values start above the floor: the first reservation reaches as far past it as any other past the clock.
      const until = this.nextReservation(choice.floorMs);
      const next = await this.commitClaim(choice.slot, leaseId, listed?.reservationRevision ?? 0, until);
      if (!next) continue; // another claimer won this slot between our listing and our commit
      this.claim = next;
      this.lost = false;
      this.generation++;
      const grant: SlotGrant = { slot: choice.slot, floorMs: choice.floorMs, reservedUntilMs: until, tookMs: Math.round(performance.now() - startedAt) };
      this.logger.info({ slot: choice.slot, floorMs: choice.floorMs, cooling: choice.cooling, previous: listed?.reservedBy, reservedUntilMs: until, tookMs: grant.tookMs, attempts: attempt + 1 }, 'slot claimed');
      for (const l of [...this.claimListeners]) l(grant);
      this.publishReserved(until);
      this.scheduleRefresh(this.refreshIntervalMs);
      return;
    }
    throw new SlotClaimError('CLAIM_FAILED', `could not claim a slot of ${this.prefix} within ${maxAttempts} attempts or ${CLAIM_DEADLINE_MS} ms (other members kept winning the race)`);
  }

  /** Stops refreshing. The held key goes with the lease; the reservation stays for the next holder. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private heldKey(slot: number): string {
    return `${this.prefix}/held/${slot}`;
  }

  private reservationKey(slot: number): string {
    return `${this.prefix}/reserved/${slot}`;
  }

  private deadline(): { deadline: number } {
    return { deadline: Date.now() + this.callTimeoutMs };
  }

  private nextReservation(floorMs = 0): number {
    return Math.max(Date.now(), this.inUseUntil(), this.requestedMs, floorMs) + this.o.reserveAheadMs;
  }

  private async txn(build: (c: Etcd3) => ReturnType<Etcd3['if']>): Promise<ITxnResponse> {
    try {
      return await build(this.client).options(this.deadline()).commit();
    } catch (err) {
      throw new SlotClaimError('CLAIM_FAILED', `etcd transaction on ${this.prefix} failed`, {}, { cause: err });
    }
  }

  /** The claim transaction; undefined when its compare failed (someone else changed the slot). */
  private async commitClaim(slot: number, leaseId: string, reservationRevision: number, untilMs: number): Promise<Claim | undefined> {
    const token = randomBytes(9).toString('base64url');
    const heldValue = JSON.stringify({ holder: this.o.holder, token });
    const res = await this.txn((c) =>
      c
        .if(this.heldKey(slot), 'Create', '==', 0)
        .and(this.reservationKey(slot), 'Mod', '==', reservationRevision)
        .then(c.put(this.heldKey(slot)).value(heldValue).lease(leaseId), c.put(this.reservationKey(slot)).value(encodeReservation(untilMs, this.o.holder, token))),
    );
    if (!res.succeeded) return undefined;
    return { slot, heldValue, token, reservationRevision: Number(res.header.revision), reservedUntilMs: untilMs };
  }

  private retaken(slot: number, startedAt: number): void {
    this.lost = false;
    this.generation++;
    this.logger.info({ slot, tookMs: Math.round(performance.now() - startedAt) }, 'slot kept under a new lease');
    this.scheduleRefresh(this.refreshIntervalMs);
  }

  private publishReserved(untilMs: number): void {
    for (const l of [...this.reserveListeners]) l(untilMs);
  }

  private exhausted(choice: { held: number; cooling: number; freeAgainAtMs: number | undefined }): SlotClaimError {
    const again = choice.freeAgainAtMs === undefined ? '' : `; the first is free again in ${Math.max(0, Math.ceil((choice.freeAgainAtMs - Date.now()) / 1000))} s`;
    return new SlotClaimError(
      'SLOTS_EXHAUSTED',
      `all ${this.o.size} slots of ${this.prefix} are taken: ${choice.held} held by live members, ${choice.cooling} in their reuse gap${again}`,
      { size: this.o.size, held: choice.held, cooling: choice.cooling, ...(choice.freeAgainAtMs !== undefined ? { freeAgainAtMs: choice.freeAgainAtMs } : {}) },
    );
  }

  /**
   * The pool as etcd has it, or only slot `only`. Reads need not be at one revision: every claim
   * transaction re-checks what it relies on.
   */
  private async list(only?: number): Promise<ListedPool> {
    let kvs: IKeyValue[];
    try {
      if (only === undefined) {
        kvs = (await this.client.getAll().prefix(`${this.prefix}/`).options(this.deadline()).exec()).kvs;
      } else {
        const keys = [this.heldKey(only), this.reservationKey(only)];
        kvs = (await Promise.all(keys.map((k) => this.client.get(k).options(this.deadline()).exec()))).flatMap((r) => r.kvs);
      }
    } catch (err) {
      throw new SlotClaimError('CLAIM_FAILED', `could not read ${this.prefix} from etcd`, {}, { cause: err });
    }
    const slots = new Map<number, ListedSlot>();
    const at = (slot: number): ListedSlot => {
      let s = slots.get(slot);
      if (s === undefined) slots.set(slot, (s = { reservationRevision: 0 }));
      return s;
    };
    for (const kv of kvs) {
      const m = /\/(held|reserved)\/(\d+)$/.exec(kv.key.toString('utf8'));
      if (!m) continue;
      const slot = Number(m[2]);
      if (!(slot < this.o.size)) continue; // a pool once run with a larger size
      const s = at(slot);
      if (m[1] === 'held') readHeld(s, kv);
      else readReservation(s, kv);
    }
    return { size: this.o.size, slots, nowMs: Date.now(), reuseGapMs: this.o.reuseGapMs };
  }

  private scheduleRefresh(delayMs: number): void {
    if (this.closed) return;
    if (this.refreshing) {
      if (delayMs === 0) this.refreshAgain = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), delayMs);
    this.timer.unref();
  }

  private async refresh(): Promise<void> {
    this.refreshing = true;
    let delay: number | undefined;
    try {
      delay = await this.refreshOnce();
    } finally {
      this.refreshing = false;
    }
    const again = this.refreshAgain;
    this.refreshAgain = false;
    if (delay !== undefined && !this.lost && this.claim !== undefined) this.scheduleRefresh(again ? 0 : delay);
  }

  /** One reservation; resolves with the delay before the next, undefined to stop until the next claim. */
  private async refreshOnce(): Promise<number | undefined> {
    const mine = this.claim;
    if (this.closed || mine === undefined || this.lost) return undefined;
    const generation = this.generation;
    const until = Math.max(this.nextReservation(), mine.reservedUntilMs);
    let res: ITxnResponse;
    try {
      res = await this.txn((c) =>
        c
          .if(this.heldKey(mine.slot), 'Value', '==', mine.heldValue)
          .and(this.reservationKey(mine.slot), 'Mod', '==', mine.reservationRevision)
          .then(c.put(this.reservationKey(mine.slot)).value(encodeReservation(until, this.o.holder, mine.token)))
          .else(c.get(this.heldKey(mine.slot)), c.get(this.reservationKey(mine.slot))),
      );
    } catch (err) {
      this.logger.debug({ err, slot: mine.slot }, 'slot reservation failed; retrying');
      return Math.min(RETRY_MS, this.refreshIntervalMs);
    }
    // A claim under a new lease happened meanwhile: this answer is about the old one.
    if (generation !== this.generation) return this.refreshIntervalMs;
    if (res.succeeded) {
      mine.reservationRevision = Number(res.header.revision);
      mine.reservedUntilMs = until;
      this.publishReserved(until);
      return this.refreshIntervalMs;
    }
    const held = res.responses[0]?.response_range?.kvs[0];
    const reservation = res.responses[1]?.response_range?.kvs[0];
    const listed: ListedSlot = { reservationRevision: 0 };
    if (reservation) readReservation(listed, reservation);
    if (held?.value.toString('utf8') !== mine.heldValue || listed.reservationToken !== mine.token) {
      this.lost = true;
      this.logger.warn({ slot: mine.slot, reservedUntilMs: mine.reservedUntilMs }, 'slot claim lapsed with our lease; values stay within the last reservation until it is claimed again');
      return undefined;
    }
    // A write of ours that timed out applied after all: go on from it (it was never used).
    mine.reservationRevision = listed.reservationRevision;
    return 0;
  }
}

function encodeReservation(untilMs: number, holder: string, token: string): string {
  return JSON.stringify({ until: untilMs, holder, token });
}

function readHeld(s: ListedSlot, kv: IKeyValue): void {
  const text = kv.value.toString('utf8');
  s.heldValue = text;
  const parsed = parseObject(text);
  s.holder = typeof parsed?.holder === 'string' && parsed.holder.length > 0 ? parsed.holder : '(unreadable holder record)';
}

function readReservation(s: ListedSlot, kv: IKeyValue): void {
  s.reservationRevision = Number(kv.mod_revision);
  const parsed = parseObject(kv.value.toString('utf8'));
  if (parsed && typeof parsed.until === 'number' && Number.isSafeInteger(parsed.until) && typeof parsed.holder === 'string' && typeof parsed.token === 'string') {
    s.reservedUntilMs = parsed.until;
    s.reservedBy = parsed.holder;
    s.reservationToken = parsed.token;
  } else {
    // Without a readable reservation nobody can say which values the slot used: never reuse it.
    s.holder ??= '(unreadable reservation record)';
  }
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
