/** Push in a cluster with the queue in Redis (--redis), on a Redis started here: see push-once.ts. */
import test from 'ava';
import { redisOnDemand } from '../support/redis.ts';
import { exactlyOnce } from './push-once.ts';

const redis = redisOnDemand();
test.after.always(() => redis.stop());

test('push in a cluster, Redis queue: one push per user from whichever node claims it, and once each after a SIGKILL with jobs queued', async (t) => {
  await exactlyOnce(t, { redis: await redis.url() }, 'redis');
});
