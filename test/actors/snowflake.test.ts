import test from 'ava';
import { Snowflake } from '../../actors/ids/snowflake.ts';

test('snowflake - ids are unique and strictly increasing within a node, 100k in a burst', (t) => {
  const s = new Snowflake(5);
  let prev = 0n;
  const seen = new Set<bigint>();
  for (let i = 0; i < 100_000; i++) {
    const id = s.next();
    t.true(id > prev || i === 0);
    prev = id;
    seen.add(id);
  }
  t.is(seen.size, 100_000);
});

test('snowflake - ids of different nodes never collide and sort by time', (t) => {
  const a = new Snowflake(1);
  const b = new Snowflake(2);
  const ids = new Set<bigint>();
  for (let i = 0; i < 10_000; i++) {
    ids.add(a.next());
    ids.add(b.next());
  }
  t.is(ids.size, 20_000);
  const id = a.next();
  t.true(Math.abs(Snowflake.timeOf(id) - Date.now()) < 1_000);
  t.true(id < 2n ** 63n, 'fits a signed 64-bit column');
});

test('snowflake - next(after) exceeds an id from a node whose clock ran ahead', (t) => {
  const ahead = new Snowflake(1);
  const future = ahead.next() + (60_000n << 22n); // one minute ahead
  const here = new Snowflake(2);
  const id = here.next(future);
  t.true(id > future);
  t.true(here.next() > id, 'later ids keep growing');
  t.throws(() => new Snowflake(1024));
});

test('snowflake - unbound it refuses ids with UNAVAILABLE; bound it starts above the floor', (t) => {
  const s = new Snowflake();
  t.is(s.node, undefined);
  t.throws(() => s.next(), { code: 'UNAVAILABLE', message: /no message-id node number/ });
  const floorMs = Date.now() + 5_000; // a previous holder's reservation plus the gap, ahead of our clock
  s.bind(7, floorMs);
  t.is(s.node, 7);
  const ids = Array.from({ length: 10_000 }, () => s.next());
  t.true(ids.every((id) => Snowflake.timeOf(id) > floorMs), 'every id is timed above the floor, even with the clock behind it');
  t.true(ids.every((id, i) => i === 0 || id > ids[i - 1]!), 'and they still grow');
  t.true(ids.every((id) => Number((id >> 12n) & 1023n) === 7), 'with the bound number');
  t.true(Snowflake.timeOf(ids.at(-1)!) <= floorMs + 3, 'time held still: 4096 ids per borrowed millisecond');
});

test('snowflake - a re-bind to another number keeps ids growing; a floor below what was used changes nothing', (t) => {
  const s = new Snowflake(1);
  const before = s.next();
  s.bind(2, 0);
  const after = s.next();
  t.true(after > before);
  t.is(Number((after >> 12n) & 1023n), 2);
  t.throws(() => s.bind(1024, 0), { instanceOf: RangeError });
  t.throws(() => s.bind(1, -1), { instanceOf: RangeError });
});

test('snowflake - the ceiling: an id past it is refused without using anything, the listener asked for more, and it works once raised', (t) => {
  const s = new Snowflake(3);
  const asked: number[] = [];
  s.onCeiling((ms) => asked.push(ms));
  const now = Date.now();
  s.setCeiling(now + 60_000);
  const first = s.next();
  // A predecessor from a node whose clock runs 2 minutes ahead: re-basing on it passes the ceiling.
  const future = (BigInt(now + 120_000 - 1_704_067_200_000) << 22n) | (9n << 12n);
  t.throws(() => s.next(future), { code: 'UNAVAILABLE', message: /reservation/ });
  t.is(asked.length, 1);
  t.true(asked[0]! > now + 120_000 - 5, 'asked for a reservation covering the id it needed');
  t.true(s.highWaterMs < now + 60_000, 'the refused id used nothing');
  const second = s.next();
  t.true(second > first, 'ids below the ceiling still come');
  s.setCeiling(now + 30_000); // lowering is ignored
  s.setCeiling(asked[0]!);
  const rebased = s.next(future);
  t.true(rebased > future, 'once raised, the re-base goes through');
  t.true(Snowflake.timeOf(rebased) <= asked[0]!, 'and stays within the new ceiling');
});

test('snowflake - at the ceiling: ids up to its millisecond come, the next one past it is refused', (t) => {
  const s = new Snowflake(4);
  const floorMs = Date.now() + 10_000;
  s.bind(4, floorMs);
  s.setCeiling(floorMs + 1); // exactly one millisecond above the floor: 4096 ids
  const ids: bigint[] = [];
  for (let i = 0; i < 4096; i++) ids.push(s.next());
  t.is(new Set(ids).size, 4096);
  t.true(ids.every((id) => Snowflake.timeOf(id) === floorMs + 1));
  t.throws(() => s.next(), { code: 'UNAVAILABLE' });
  s.setCeiling(floorMs + 2);
  t.is(Snowflake.timeOf(s.next()), floorMs + 2);
});
