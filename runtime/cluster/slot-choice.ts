/**
 * Which slot of a pool to claim, decided from one listing of it. Pure: the registry side (the
 * listing, the transaction that makes the choice stick) is in etcd-slot-claim.ts.
 *
 * A slot is a small integer `0..size-1` unique among live members. Each holder publishes a
 * *reservation*: a time (ms since the Unix epoch) it promises not to use values past without
 * publishing a larger one first; the reservation stays after the holder is gone. A slot is
 * - held while its lease-bound key exists (`holder` set): never given to anyone else;
 * - cooling from then until the claimer's clock passes its last reservation plus the reuse gap;
 * - free after that (or when it never had a holder).
 * An automatic claim takes the lowest free slot. A wanted (configured) slot may be taken while
 * cooling: its floor, the last reservation plus the gap, keeps the new holder's values apart
 * from the old holder's in value terms even though not yet in wall-clock terms.
 */
export interface SlotRecord {
  /** The live holder's name; set while the lease-bound key exists. */
  readonly holder?: string;
  /** The last reservation published for the slot (Unix ms), if any. */
  readonly reservedUntilMs?: number;
  /** Who published that reservation. */
  readonly reservedBy?: string;
}

export interface SlotPool {
  /** Slots are `0..size-1`. */
  readonly size: number;
  /** Slots with a holder or a past reservation; the others have never been used. */
  readonly slots: ReadonlyMap<number, SlotRecord>;
  /** The claimer's clock (Unix ms). */
  readonly nowMs: number;
  readonly reuseGapMs: number;
}

export type SlotChoice =
  /** Take `slot`; the new holder uses values above `floorMs` only. */
  | { readonly kind: 'take'; readonly slot: number; readonly floorMs: number; readonly cooling: boolean }
  /** The wanted slot has a live holder. */
  | { readonly kind: 'held'; readonly slot: number; readonly holder: string }
  /** No slot is free: `held` have live holders, `cooling` wait for their gap (the first until `freeAgainAtMs`). */
  | { readonly kind: 'exhausted'; readonly held: number; readonly cooling: number; readonly freeAgainAtMs: number | undefined };

/** Values of a new holder of this slot must be above this (Unix ms; 0 for a slot never reserved). */
export function floorOf(record: SlotRecord | undefined, reuseGapMs: number): number {
  return record?.reservedUntilMs === undefined ? 0 : record.reservedUntilMs + reuseGapMs;
}

export function chooseSlot(pool: SlotPool, wanted?: number): SlotChoice {
  if (!Number.isInteger(pool.size) || pool.size < 1) throw new RangeError(`pool size must be a positive integer, got ${pool.size}`);
  if (wanted !== undefined) {
    if (!Number.isInteger(wanted) || wanted < 0 || wanted >= pool.size) throw new RangeError(`wanted slot must be 0..${pool.size - 1}, got ${wanted}`);
    const r = pool.slots.get(wanted);
    if (r?.holder !== undefined) return { kind: 'held', slot: wanted, holder: r.holder };
    const floorMs = floorOf(r, pool.reuseGapMs);
    return { kind: 'take', slot: wanted, floorMs, cooling: floorMs > pool.nowMs };
  }
  let held = 0;
  let cooling = 0;
  let freeAgainAtMs: number | undefined;
  for (let slot = 0; slot < pool.size; slot++) {
    const r = pool.slots.get(slot);
    if (r?.holder !== undefined) {
      held++;
      continue;
    }
    const floorMs = floorOf(r, pool.reuseGapMs);
    if (floorMs <= pool.nowMs) return { kind: 'take', slot, floorMs, cooling: false };
    cooling++;
    if (freeAgainAtMs === undefined || floorMs < freeAgainAtMs) freeAgainAtMs = floorMs;
  }
  return { kind: 'exhausted', held, cooling, freeAgainAtMs };
}
