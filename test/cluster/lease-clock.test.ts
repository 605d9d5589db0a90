import test from 'ava';
import { LeaseClock } from '../../runtime/cluster/lease-clock.ts';

test('healthy until margin x TTL after the send time of the last renewal', (t) => {
  const c = new LeaseClock(0.6);
  t.false(c.isHealthy(0), 'never renewed');
  c.renewed(1_000, 5_000);
  t.true(c.isHealthy(3_999));
  t.false(c.isHealthy(4_000));
  t.is(c.validUntil(), 6_000);
});

test('an older renewal completing late never moves the deadline back', (t) => {
  const c = new LeaseClock(0.5);
  c.renewed(2_000, 4_000);
  c.renewed(1_000, 4_000);
  t.is(c.healthyUntil(), 4_000);
});

test('a lost lease is unhealthy until the next renewal', (t) => {
  const c = new LeaseClock(0.6);
  c.renewed(0, 10_000);
  c.markLost();
  t.false(c.isHealthy(1));
  t.is(c.validUntil(), Number.NEGATIVE_INFINITY);
  c.renewed(5, 10_000);
  t.true(c.isHealthy(6));
});

test('margin must be a fraction in (0, 1]', (t) => {
  t.throws(() => new LeaseClock(0));
  t.throws(() => new LeaseClock(1.5));
  t.notThrows(() => new LeaseClock(1));
});
