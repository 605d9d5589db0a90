/** Push in a cluster with the queue in the store (shared SQLite): see push-once.ts. */
import test from 'ava';
import { exactlyOnce } from './push-once.ts';

test('push in a cluster, store queue: one push per user from whichever node claims it, and once each after a SIGKILL with jobs queued', async (t) => {
  await exactlyOnce(t, {}, 'kv');
});
