/**
 * Push for offline users with the push queue in Redis (--redis: a stream with a consumer group):
 * the shared end-to-end scenarios (push-scenarios.ts) that touch the queue (decide, merge, cancel,
 * retry, dead-letter with `parleyctl push dead-letters --redis`, SIGKILL with jobs pending), on a
 * real Redis started here on a free port, as test/presence does.
 */
import test from 'ava';
import { redisOnDemand } from '../support/redis.ts';
import { runPushScenarios } from './push-scenarios.ts';

const redis = redisOnDemand();
test.after.always(() => redis.stop());

runPushScenarios('redis queue', {
  flags: async () => ({ redis: await redis.url() }),
  // Another database of the same Redis: another queue.
  ownQueueFlags: async () => ({ redis: `${await redis.url()}/1` }),
  ctlArgs: async () => ['--redis', await redis.url()],
  queueOnly: true,
});
