/**
 * Push for offline users end to end, written once and run against each push queue: the store's
 * tables (notifier.test.ts) and Redis Streams with --redis (redis-push.test.ts). A real parleyd,
 * a real store, and a webhook receiver on loopback (test/support/webhook-receiver.ts) that checks
 * every request's HMAC signature. Nothing of Parley is mocked.
 *
 * One node serves most cases (each with its own users); the receiver answers per recipient as a
 * test tells it (statuses in order, then 200), so retry and dead-letter cases share it too.
 * Cases that do not touch the queue (an online recipient, mute validation) run once, with
 * `queueOnly` false.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ParleyApiError } from '../../client/index.ts';
import { connect, eventually, newUser, ROOT, startServer, type ServerHandle, type TestUser } from '../support/server.ts';
import { WebhookReceiver } from '../support/webhook-receiver.ts';

export const SECRET = 'test-webhook-secret-0123456789';
/** Short enough to keep the file fast, long enough for a burst of 20 HTTP sends to fit in one window. */
const COALESCE_MS = 1_500;
const MAX_ATTEMPTS = 3;

/** The webhook receiver with this suite's secret. */
export class Receiver extends WebhookReceiver {
  constructor() {
    super(SECRET);
  }
}

export interface PushQueueSetup {
  /** Flags that choose the queue (`{}`: the store's; `{ redis: URL }`: Redis), for every node started. */
  readonly flags: () => Promise<Record<string, string>>;
  /** Flags for a node with a queue of its own, apart from the suite's node (a fresh data dir has one already). */
  readonly ownQueueFlags: () => Promise<Record<string, string>>;
  /** What parleyctl push dead-letters needs besides --data-dir to find the same queue. */
  readonly ctlArgs: () => Promise<string[]>;
  /** Leave out the cases that do not depend on the queue (they run with the store's). */
  readonly queueOnly?: boolean;
}

export const pushFlags = (receiver: Receiver, coalesceMs = COALESCE_MS): Record<string, string> => ({
  'push-webhook': receiver.url,
  'push-webhook-secret': SECRET,
  'push-coalesce-ms': String(coalesceMs),
  'push-max-attempts': String(MAX_ATTEMPTS),
  'push-retry-base-ms': '100',
});

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** parleyctl as an operator runs it. */
function parleyctl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bin/parleyctl.ts'), ...args], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Registers the suite's tests, labelled `label`, on the queue `setup` chooses. */
export function runPushScenarios(label: string, setup: PushQueueSetup): void {
  let server: ServerHandle;
  const receiver = new Receiver();
  let queueFlags: Record<string, string> = {};
  let ctlArgs: string[] = [];

  test.before(async () => {
    queueFlags = await setup.flags();
    ctlArgs = await setup.ctlArgs();
    await receiver.start();
    server = await startServer({ flags: { ...pushFlags(receiver), ...queueFlags } });
  });

  test.after.always(async () => {
    await server?.stop();
    await receiver.close();
  });

  /** A sender and a recipient with a DM; the recipient has used a device once (so it has a device id), and is offline now. */
  async function pair(): Promise<{ a: TestUser; b: TestUser; channelId: string }> {
    const a = await newUser(server, 'snd');
    const b = await newUser(server, 'rcp');
    const { channel_id } = await a.http.openDm(b.userId);
    return { a, b, channelId: channel_id };
  }

  if (!setup.queueOnly) test.serial(`push [${label}] - recipient online: no push`, async (t) => {
    const { a, b, channelId } = await pair();
    const bc = await connect(server, b, 'phone');
    await a.http.postMessage(channelId, 'm1', 'hello');
    t.true(await eventually(() => bc.deliveries.length === 1));
    await sleep(COALESCE_MS * 2);
    t.is(receiver.for(b.userId).length, 0);
    bc.client.close();
  });

  test.serial(`push [${label}] - recipient offline, one message: exactly one push naming the channel, the sender and the unread count, signed`, async (t) => {
    const { a, b, channelId } = await pair();
    await a.http.setDisplayName('Alice Sender');
    // A device that was used once and went away: the push names it.
    const bc = await connect(server, b, 'phone');
    bc.client.close();
    await sleep(200);
    const sent = await a.http.postMessage(channelId, 'm1', 'secret words');
    t.true(await eventually(() => receiver.for(b.userId).length >= 1, COALESCE_MS * 4));
    await sleep(COALESCE_MS * 1.5);
    const got = receiver.for(b.userId);
    t.is(got.length, 1, 'exactly one push');
    t.like(got[0], { type: 'message', channel_id: channelId, message_id: sent.message_id, sender_id: a.userId, sender_name: 'Alice Sender', unread_count: 1, user_id: b.userId });
    t.is(got[0]!.text, undefined, 'no text without --push-include-text');
    t.regex(got[0]!.notification_id, new RegExp(`^${b.userId}:\\d+$`), 'a stable notification id');
    t.true(got[0]!.device_ids.includes('phone') || got[0]!.device_ids.length === 0);
    t.is(receiver.badSignatures, 0);
  });

  test.serial(`push [${label}] - a burst of 20 messages within the window: one push with unread_count 20`, async (t) => {
    const { a, b, channelId } = await pair();
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) await a.http.postMessage(channelId, `burst-${i}`, `burst ${i}`);
    t.true(Date.now() - t0 < COALESCE_MS, 'the burst fit in one window');
    t.true(await eventually(() => receiver.for(b.userId).length >= 1, COALESCE_MS * 4));
    await sleep(COALESCE_MS * 1.5);
    const got = receiver.for(b.userId);
    t.is(got.length, 1);
    t.is(got[0]!.unread_count, 20);
    t.is(got[0]!.sender_id, a.userId);
  });

  if (!setup.queueOnly) test.serial(`push [${label}] - a muted channel produces none; unmuted, it pushes again`, async (t) => {
    const { a, b, channelId } = await pair();
    await b.http.mute(channelId, Date.now() + 60_000);
    await a.http.postMessage(channelId, 'm1', 'while muted');
    await sleep(COALESCE_MS * 2.5);
    t.is(receiver.for(b.userId).length, 0);
    await b.http.unmute(channelId);
    await a.http.postMessage(channelId, 'm2', 'after unmute');
    t.true(await eventually(() => receiver.for(b.userId).length === 1, COALESCE_MS * 4));
    t.is(receiver.for(b.userId)[0]!.unread_count, 2, 'the unread count still counts the muted-time message');
  });

  if (!setup.queueOnly) test.serial(`push [${label}] - mute: members only, until_ms validated at and past its limits`, async (t) => {
    const { a, channelId } = await pair();
    const stranger = await newUser(server, 'str');
    const status = async (p: Promise<unknown>): Promise<number> => {
      try {
        await p;
        return 200;
      } catch (err) {
        return err instanceof ParleyApiError ? err.status : -1;
      }
    };
    t.is(await status(stranger.http.mute(channelId, Date.now() + 60_000)), 403);
    t.is(await status(stranger.http.unmute(channelId)), 403);
    t.is(await status(a.http.mute('no-such-channel', Date.now() + 60_000)), 403);
    const year = 366 * 86_400_000;
    t.is(await status(a.http.mute(channelId, Date.now() + year)), 200, 'at the limit: 366 days ahead');
    t.is(await status(a.http.mute(channelId, Date.now() + year + 60_000)), 400, 'past the limit');
    t.is(await status(a.http.mute(channelId, Date.now() - 1)), 400, 'in the past');
    t.is(await status(a.http.mute(channelId, 1.5 as number)), 400, 'not an integer');
    t.is(await status(a.http.request('PUT', `/v1/channels/${channelId}/mute`, { until_ms: 'soon' })), 400);
    t.is(await status(a.http.unmute(channelId)), 200);
    t.is(await status(a.http.unmute(channelId)), 200, 'unmuting twice is fine');
  });

  test.serial(`push [${label}] - a device connecting during the window gets the message: no push for it`, async (t) => {
    const { a, b, channelId } = await pair();
    await a.http.postMessage(channelId, 'm1', 'catch me');
    const bc = await connect(server, b, 'laptop', { lastInboxSeq: 0 });
    t.true(await eventually(() => bc.deliveries.length === 1));
    // Received means acknowledged (README: a device that acks the entries cancels the job).
    t.true(await eventually(() => bc.client.lastAcked >= 1));
    bc.client.close();
    await sleep(COALESCE_MS * 2.5);
    t.is(receiver.for(b.userId).length, 0);
    // What it did not receive is still told: a message after it left.
    await a.http.postMessage(channelId, 'm2', 'missed');
    t.true(await eventually(() => receiver.for(b.userId).length === 1, COALESCE_MS * 4));
  });

  test.serial(`push [${label}] - provider answers 500 twice then 200: retried, sent once`, async (t) => {
    const { a, b, channelId } = await pair();
    receiver.plans.set(b.userId, { statuses: [500, 503] });
    await a.http.postMessage(channelId, 'm1', 'retry me');
    t.true(await eventually(() => receiver.for(b.userId).length === 1, COALESCE_MS * 6));
    await sleep(COALESCE_MS);
    t.is(receiver.requests.get(b.userId), 3, 'two failures, one success');
    t.is(receiver.for(b.userId).length, 1);
  });

  test.serial(`push [${label}] - provider always 500: dead letter, shown by parleyctl push dead-letters, retried by it`, async (t) => {
    const { a, b, channelId } = await pair();
    receiver.plans.set(b.userId, { statuses: [], always: 500 });
    await a.http.postMessage(channelId, 'm1', 'doomed');
    t.true(await eventually(() => (receiver.requests.get(b.userId) ?? 0) >= MAX_ATTEMPTS, COALESCE_MS * 8));
    await sleep(500);
    t.is(receiver.requests.get(b.userId), MAX_ATTEMPTS, 'no attempt past push_max_attempts');

    const listed = await parleyctl(['push', 'dead-letters', '--data-dir', server.dataDir, ...ctlArgs, '--json']);
    t.is(listed.code, 0, listed.stderr);
    const letters = (JSON.parse(listed.stdout) as { dead_letters: { job: { id: string; user_id: string }; attempts: number; last_error: string }[] }).dead_letters;
    const mine = letters.find((d) => d.job.user_id === b.userId);
    t.truthy(mine);
    t.is(mine!.attempts, MAX_ATTEMPTS);
    t.regex(mine!.last_error, /500/);
    const table = await parleyctl(['push', 'dead-letters', '--data-dir', server.dataDir, ...ctlArgs]);
    t.regex(table.stdout, /^ID\s+USER\s+CHANNEL\s+ATTEMPTS/);
    t.true(table.stdout.includes(mine!.job.id));

    receiver.plans.delete(b.userId);
    const retried = await parleyctl(['push', 'dead-letters', '--data-dir', server.dataDir, ...ctlArgs, '--retry', mine!.job.id]);
    t.is(retried.code, 0, retried.stderr);
    t.true(await eventually(() => receiver.for(b.userId).length === 1, 10_000));
    t.is(receiver.for(b.userId)[0]!.channel_id, channelId);
    const after = await parleyctl(['push', 'dead-letters', '--data-dir', server.dataDir, ...ctlArgs, '--json']);
    t.false((JSON.parse(after.stdout) as { dead_letters: { job: { user_id: string } }[] }).dead_letters.some((d) => d.job.user_id === b.userId));
    await sleep(COALESCE_MS);
    t.is(receiver.for(b.userId).length, 1, 'sent once');
    const unknown = await parleyctl(['push', 'dead-letters', '--data-dir', server.dataDir, ...ctlArgs, '--retry', 'nope']);
    t.not(unknown.code, 0);
  });

  test.serial(`push [${label}] - a node SIGKILLed with jobs pending: after restart every job is sent once, none twice`, async (t) => {
    const own = new Receiver();
    await own.start();
    // A long window: the kill lands while every job waits in the queue. A queue of its own: the
    // suite's node must not send these.
    const flags = { ...pushFlags(own, 3_000), ...(await setup.ownQueueFlags()) };
    const first = await startServer({ flags });
    const a = await newUser(first, 'snd');
    const bs = await Promise.all(Array.from({ length: 6 }, () => newUser(first, 'rcp')));
    for (const b of bs) {
      const { channel_id } = await a.http.openDm(b.userId);
      await a.http.postMessage(channel_id, `k-${b.userId}`, 'before the kill');
    }
    await sleep(300); // the decisions are written (they follow the inbox entries by a store write)
    await first.kill();
    t.is(own.pushes.length, 0, 'nothing was due yet');
    const second = await startServer({ dataDir: first.dataDir, flags });
    try {
      t.true(await eventually(() => own.pushes.length >= bs.length, 15_000), `got ${own.pushes.length} of ${bs.length}`);
      await sleep(3_000);
      for (const b of bs) t.is(own.for(b.userId).length, 1, `one push for ${b.username}`);
      t.is(own.pushes.length, bs.length, 'none twice');
    } finally {
      await second.stop();
      await own.close();
    }
  });
}
