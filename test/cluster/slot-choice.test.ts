import test from 'ava';
import { chooseSlot, floorOf, type SlotRecord } from '../../runtime/cluster/slot-choice.ts';

const NOW = 1_800_000_000_000;
const GAP = 10_000;
const pool = (size: number, entries: [number, SlotRecord][], nowMs = NOW) => ({ size, slots: new Map(entries), nowMs, reuseGapMs: GAP });

test('slot choice - the lowest free slot; held ones are skipped, never-used ones have floor 0', (t) => {
  t.deepEqual(chooseSlot(pool(4, [])), { kind: 'take', slot: 0, floorMs: 0, cooling: false });
  t.deepEqual(chooseSlot(pool(4, [[0, { holder: 'a' }], [1, { holder: 'b' }]])), { kind: 'take', slot: 2, floorMs: 0, cooling: false });
});

test('slot choice - a slot whose holder is gone cools for the gap past its last reservation, then is free with a floor above it', (t) => {
  const reserved = NOW - 3_000; // the old holder reserved up to 3 s ago
  const entries: [number, SlotRecord][] = [[0, { holder: 'a' }], [1, { reservedUntilMs: reserved, reservedBy: 'dead' }]];
  const within = pool(4, entries);
  t.deepEqual(chooseSlot(within), { kind: 'take', slot: 2, floorMs: 0, cooling: false }, 'skipped while cooling');
  const atGap = pool(4, entries, reserved + GAP);
  t.deepEqual(chooseSlot(atGap), { kind: 'take', slot: 1, floorMs: reserved + GAP, cooling: false }, 'free exactly at reservation + gap');
  const justBefore = pool(4, entries, reserved + GAP - 1);
  t.is((chooseSlot(justBefore) as { slot: number }).slot, 2, 'still cooling 1 ms before');
  t.is(floorOf({ reservedUntilMs: reserved }, GAP), reserved + GAP);
  t.is(floorOf(undefined, GAP), 0);
});

test('slot choice - a reservation far in the claimer\'s future (the old holder\'s clock ran ahead) keeps the slot cooling until the claimer\'s clock passes it', (t) => {
  const p = pool(2, [[0, { reservedUntilMs: NOW + 3_600_000 }]]);
  t.deepEqual(chooseSlot(p), { kind: 'take', slot: 1, floorMs: 0, cooling: false });
});

test('slot choice - a wanted slot: refused with its holder while held; taken while cooling, above the floor', (t) => {
  const p = pool(4, [[2, { holder: 'n2', reservedUntilMs: NOW + 5_000 }], [3, { reservedUntilMs: NOW - 1_000, reservedBy: 'n3' }]]);
  t.deepEqual(chooseSlot(p, 2), { kind: 'held', slot: 2, holder: 'n2' });
  t.deepEqual(chooseSlot(p, 3), { kind: 'take', slot: 3, floorMs: NOW - 1_000 + GAP, cooling: true });
  t.deepEqual(chooseSlot(p, 0), { kind: 'take', slot: 0, floorMs: 0, cooling: false });
});

test('slot choice - at the limit the last slot is taken; past it: exhausted, with counts and when the first cooling one is free', (t) => {
  const size = 4;
  const atLimit = pool(size, [[0, { holder: 'a' }], [1, { holder: 'b' }], [2, { holder: 'c' }]]);
  t.deepEqual(chooseSlot(atLimit), { kind: 'take', slot: 3, floorMs: 0, cooling: false });
  const full = pool(size, [[0, { holder: 'a' }], [1, { holder: 'b' }], [2, { holder: 'c' }], [3, { holder: 'd' }]]);
  t.deepEqual(chooseSlot(full), { kind: 'exhausted', held: 4, cooling: 0, freeAgainAtMs: undefined });
  const fullWithCooling = pool(size, [
    [0, { holder: 'a' }],
    [1, { reservedUntilMs: NOW + 2_000 }],
    [2, { holder: 'c' }],
    [3, { reservedUntilMs: NOW - 1_000 }],
  ]);
  t.deepEqual(chooseSlot(fullWithCooling), { kind: 'exhausted', held: 2, cooling: 2, freeAgainAtMs: NOW - 1_000 + GAP });
});

test('slot choice - bad input is refused', (t) => {
  t.throws(() => chooseSlot(pool(0, [])), { instanceOf: RangeError });
  t.throws(() => chooseSlot(pool(4, []), 4), { instanceOf: RangeError, message: /0\.\.3/ });
  t.throws(() => chooseSlot(pool(4, []), -1), { instanceOf: RangeError });
  t.throws(() => chooseSlot(pool(4, []), 1.5), { instanceOf: RangeError });
});
