import test from 'ava';
import { backoffDelay, DEFAULT_BACKOFF } from '../../runtime/transport/reconnect-backoff.ts';
import { secretMatches } from '../../runtime/transport/cluster-secret.ts';

test('backoff grows exponentially and stays within [ceiling/2, ceiling]', (t) => {
  const policy = { initialMs: 100, maxMs: 5_000, multiplier: 2 };
  t.is(backoffDelay(0, policy, () => 0), 50);
  t.is(backoffDelay(0, policy, () => 0.999999), 100);
  t.is(backoffDelay(3, policy, () => 0), 400);
  t.is(backoffDelay(3, policy, () => 0.5), 600);
});

test('backoff is capped, also for absurd attempt counts', (t) => {
  for (const attempt of [6, 10, 100, 1e9]) {
    const d = backoffDelay(attempt, DEFAULT_BACKOFF, () => 0.999999);
    t.true(d <= DEFAULT_BACKOFF.maxMs && d >= DEFAULT_BACKOFF.maxMs / 2, `attempt ${attempt}: ${d}`);
  }
  t.is(backoffDelay(-5, DEFAULT_BACKOFF, () => 0), 50);
});

test('secret check accepts only the exact secret', (t) => {
  t.true(secretMatches('s3cret', 's3cret'));
  t.false(secretMatches('s3cret', 's3cre'));
  t.false(secretMatches('s3cret', 's3cret '));
  t.false(secretMatches('s3cret', ''));
  t.false(secretMatches('s3cret', undefined));
});
