/**
 * Push in a cluster: any node may send, each notification is sent by exactly one. Three parleyd
 * processes with a real etcd and a shared SQLite file, a webhook receiver in the test (checking
 * every HMAC signature), and offline users that each get a few messages from senders on every
 * node. Every notification is counted by its `notification_id`, and per user:
 *
 * - all nodes polling one queue: each user gets exactly one push (the burst is one window),
 *   with the right unread count, and no notification_id arrives twice;
 * - then a node is SIGKILLed while the next users' jobs wait in the queue (a window long enough
 *   that none is due yet): the two survivors send every one of them, once.
 *
 * Written once, run with the queue in the store (push-once.test.ts) and in Redis (`--redis`, a
 * stream read by a consumer group: push-once-redis.test.ts), each file on its own cluster.
 */
import type { ExecutionContext } from 'ava';
import { ParleyApiError } from '../../client/index.ts';
import { startCluster, type ClusterNode } from '../support/cluster.ts';
import { eventually, newUser, type TestUser } from '../support/server.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';
import { dumpLogs, placement, sleep, waitForView } from './support.ts';

const SECRET = 'cluster-push-secret-0123456789abcdef';
/** Long enough for the kill to land before any job of its batch is due. */
const COALESCE_MS = 4_000;
/** Offline users per batch, and messages each one gets. */
const USERS = 12;
const MESSAGES = 3;
const ALL = ['n1', 'n2', 'n3'];

/** A send retried with the same client_msg_id on a retryable answer, as an app does (a busy machine times some out). */
async function postWithRetry(sender: TestUser, channelId: string, clientMsgId: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await sender.http.postMessage(channelId, clientMsgId, `message ${clientMsgId}`);
      return;
    } catch (err) {
      const retryable = err instanceof ParleyApiError && (err.status === 429 || err.status >= 500);
      if (!retryable || attempt >= 10) throw err;
      await sleep(200 * attempt);
    }
  }
}

/** `count` offline users (never connected), each sent MESSAGES messages over HTTP by its own sender, senders on every node. */
async function batch(nodes: readonly ClusterNode[], count: number, tag: string): Promise<TestUser[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const sender = await newUser(nodes[i % nodes.length]!, `s${tag}`);
      const recipient = await newUser(nodes[(i + 1) % nodes.length]!, `r${tag}`);
      const { channel_id } = await sender.http.openDm(recipient.userId);
      for (let m = 0; m < MESSAGES; m++) await postWithRetry(sender, channel_id, `${tag}-${i}-${m}`);
      return recipient;
    }),
  );
}

/** Problems with what `recipients` got: each exactly one push, with the full unread count. */
function check(receiver: WebhookReceiver, recipients: readonly TestUser[]): string[] {
  const problems: string[] = [];
  for (const r of recipients) {
    const got = receiver.for(r.userId);
    if (got.length !== 1) problems.push(`${r.username}: ${got.length} pushes`);
    else if (got[0]!.unread_count !== MESSAGES) problems.push(`${r.username}: unread_count ${got[0]!.unread_count}`);
  }
  for (const [id, n] of receiver.repeated()) problems.push(`notification ${id} arrived ${n} times`);
  if (receiver.badSignatures > 0) problems.push(`${receiver.badSignatures} bad signatures`);
  return problems;
}

/** The whole check on a fresh 3-node cluster with these extra flags (the queue's). */
export async function exactlyOnce(t: ExecutionContext, queueFlags: Record<string, string>, tag: string): Promise<void> {
  const receiver = new WebhookReceiver(SECRET);
  await receiver.start();
  const cluster = await startCluster(3, {
    'push-webhook': receiver.url,
    'push-webhook-secret': SECRET,
    'push-coalesce-ms': String(COALESCE_MS),
    'push-retry-base-ms': '200',
    ...queueFlags,
  });
  try {
    await waitForView(cluster.nodes, ALL);
    const nodes = cluster.nodes;

    // All three nodes polling one queue.
    const first = await batch(nodes, USERS, `${tag}a`);
    t.true(await eventually(() => first.every((r) => receiver.for(r.userId).length >= 1), COALESCE_MS * 4, 50), `first batch: ${check(receiver, first).join('; ')}`);
    await sleep(COALESCE_MS / 2); // room for a second send, if there were one
    t.deepEqual(check(receiver, first), [], 'all nodes up: one push per user, no notification twice');

    // A node killed while the next batch's jobs are queued, none due yet.
    const second = await batch(nodes, USERS, `${tag}b`);
    await sleep(300); // the decisions are written (they follow the inbox entries by one write)
    const queued = second.length - (receiver.pushes.length - first.length);
    const onDead = second.filter((r) => placement('user', r.userId, ALL) === 'n3').length;
    await cluster.node('n3').kill();
    t.log(`${tag}: n3 killed with ${queued} of ${second.length} jobs queued (${onDead} of those users' actors were on it)`);
    t.true(queued > 0, 'the kill landed with jobs queued');
    const survivors = [cluster.node('n1'), cluster.node('n2')];
    await waitForView(survivors, ['n1', 'n2']);
    t.true(await eventually(() => second.every((r) => receiver.for(r.userId).length >= 1), 30_000, 50), `second batch: ${check(receiver, second).join('; ')}`);
    await sleep(COALESCE_MS / 2);
    t.deepEqual(check(receiver, [...first, ...second]), [], 'after the kill: every job sent once, none twice');
    t.is(receiver.pushes.length, first.length + second.length);
  } finally {
    dumpLogs(cluster, `push-once-${tag}`);
    await cluster.stop();
    await receiver.close();
  }
}
