/** The job queue contract on a real Redis (started here on a free port, as test/presence does). */
import test from 'ava';
import { RedisJobQueue } from '../../runtime/queue/index.ts';
import { redisOnDemand } from '../support/redis.ts';
import { runQueueContract } from './contract.ts';

const redis = redisOnDemand();
test.after.always(() => redis.stop());

runQueueContract('redis', async (name, { leaseMs }) => new RedisJobQueue({ url: await redis.url(), name, leaseMs }));
