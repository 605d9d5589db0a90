import test from 'ava';
import { KeyedRateLimiter, TokenBucket } from '../../runtime/limits/token-bucket.ts';

test('token bucket - burst at once, then the rate; the next token after 1/rate s', (t) => {
  const b = new TokenBucket(2, 5, 0);
  for (let i = 0; i < 5; i++) t.true(b.take(1, 0), `take ${i} of the burst`);
  t.false(b.take(1, 0), 'past the burst');
  t.false(b.take(1, 499), 'before 1/rate s');
  t.true(b.take(1, 500), 'at 1/rate s');
  t.false(b.take(1, 500));
  t.true(b.isFull(500 + 2_500), 'refilled after burst/rate s');
});

test('keyed rate limiter - keys are limited apart; refilled keys are forgotten, so memory follows the active keys', (t) => {
  const start = Date.now();
  const limiter = new KeyedRateLimiter(10, 2);
  t.true(limiter.take('a', start));
  t.true(limiter.take('a', start));
  t.false(limiter.take('a', start), 'a is past its burst');
  t.true(limiter.take('b', start), 'b is unaffected');
  for (let i = 0; i < 1_000; i++) limiter.take(`idle-${i}`, start);
  t.is(limiter.size, 1_002);
  // A minute later every bucket has refilled: the next take prunes them all, keeping only its own.
  t.true(limiter.take('c', start + 61_000));
  t.is(limiter.size, 1);
  // A forgotten key starts again with a full burst, as a kept full bucket would.
  t.true(limiter.take('a', start + 61_000));
  t.true(limiter.take('a', start + 61_000));
  t.false(limiter.take('a', start + 61_000));
});
