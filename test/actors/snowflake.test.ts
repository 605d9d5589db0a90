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
