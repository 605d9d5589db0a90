import test from 'ava';
import { FailureThrottle } from '../../runtime/limits/failure-throttle.ts';

const limits = { limit: 20, windowMs: 900_000, firstBlockMs: 1_000, capacity: 1_024 };

test('failure throttle - 20 charges admitted, the 21st refused for 1 s, then each block doubles up to the window', (t) => {
  const th = new FailureThrottle(limits);
  for (let i = 1; i <= 20; i++) t.deepEqual(th.admit('alice', 1_000 + i), { admitted: true }, `attempt ${i}`);
  t.deepEqual(th.admit('alice', 1_020), { admitted: false, retryAfterMs: 1_000 }, 'at the limit: blocked 1 s from the 20th');
  t.deepEqual(th.admit('alice', 2_019), { admitted: false, retryAfterMs: 1 });
  t.deepEqual(th.admit('alice', 2_020), { admitted: true }, 'one attempt when the block ends');
  t.deepEqual(th.admit('alice', 2_021), { admitted: false, retryAfterMs: 1_999 }, 'past it: 2 s');
  let now = 4_020;
  const blocks: number[] = [];
  for (let i = 0; i < 14; i++) {
    t.true(th.admit('alice', now).admitted);
    const r = th.admit('alice', now);
    if (r.admitted) throw new Error('admitted inside a block');
    blocks.push(r.retryAfterMs);
    now += r.retryAfterMs;
  }
  t.deepEqual(blocks.slice(0, 9), [4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000, 900_000]);
  t.true(blocks.slice(9).every((b) => b === 900_000), 'never longer than the window');
  t.deepEqual(th.admit('bob', now), { admitted: true }, 'other keys are not affected');
});

test('failure throttle - a success forgets the failures; quiet for the window forgets them too, a block counts as not quiet', (t) => {
  const th = new FailureThrottle(limits);
  for (let i = 0; i < 19; i++) th.admit('a', 0);
  th.succeeded('a');
  for (let i = 0; i < 20; i++) t.true(th.admit('a', 10).admitted, 'a fresh 20 after a success');
  t.false(th.admit('a', 11).admitted);
  // Blocked until 1,010: quiet only a window after that.
  t.false(th.sweep(1_010 + 900_000));
  t.true(th.sweep(1_011 + 900_000), 'forgotten');
  for (let i = 0; i < 20; i++) t.true(th.admit('a', 1_011 + 900_000).admitted);
});

test('failure throttle - charges before the outcome: attempts in flight together cannot pass the limit together', (t) => {
  const th = new FailureThrottle(limits);
  const admitted = Array.from({ length: 100 }, () => th.admit('x', 5)).filter((a) => a.admitted).length;
  t.is(admitted, 20);
});

test('failure throttle - bounded: a full table evicts keys under the limit first, never the key being charged', (t) => {
  const th = new FailureThrottle({ ...limits, limit: 2, capacity: 3 });
  th.admit('throttled', 0);
  th.admit('throttled', 0);
  th.admit('b', 1);
  th.admit('c', 2);
  th.admit('d', 3); // evicts b (under the limit), not the older throttled key
  t.is(th.size, 3);
  t.false(th.admit('throttled', 4).admitted, 'the throttled key survived');
  const full = new FailureThrottle({ ...limits, limit: 1, capacity: 2 });
  full.admit('p', 0);
  full.admit('q', 0);
  full.admit('r', 1); // all at the limit: the oldest other key goes
  t.false(full.admit('r', 2).admitted, 'the new key is counted, not evicted');
  t.true(full.admit('p', 2).admitted, 'p was the one evicted');
});

test('failure throttle - a snapshot carries the records that matter to a new owner', (t) => {
  const a = new FailureThrottle(limits);
  for (let i = 0; i < 20; i++) a.admit('k', 100);
  a.admit('old', 0);
  const saved = a.snapshot(900_050);
  t.deepEqual(saved.map(([k]) => k), ['k'], 'the quiet key is left out');
  const b = new FailureThrottle(limits);
  b.restore(JSON.parse(JSON.stringify(saved)) as typeof saved, 900_060);
  t.true(b.admit('k', 900_060).admitted, "k's block (1 s from 100) is over: one attempt admitted");
  t.false(b.admit('k', 900_061).admitted, 'and it counts as the 21st');
  t.throws(() => new FailureThrottle({ ...limits, firstBlockMs: 2_000_000 }), { message: /firstBlockMs <= windowMs/ });
});

test('failure throttle - a refund takes back a charge never judged, and the block it started', (t) => {
  const th = new FailureThrottle(limits);
  for (let i = 0; i < 20; i++) th.admit('k', 0);
  t.false(th.admit('k', 1).admitted, 'blocked at 20');
  th.refund('k');
  t.true(th.admit('k', 2).admitted, '19 again: the 20th attempt is admitted');
  t.false(th.admit('k', 3).admitted);
  th.refund('nobody');
  th.admit('one', 0);
  th.refund('one');
  t.is(th.size, 1, 'a key whose only charge was refunded is forgotten');
});
