/**
 * Push for offline users, end to end: a real parleyd, real SQLite, and a webhook receiver on
 * loopback written here that checks every request's HMAC signature. Nothing of Parley is mocked.
 *
 * One node serves most cases (each with its own users); the receiver answers per recipient as a
 * test tells it (statuses in order, then 200), so retry and dead-letter cases share it too.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { ParleyApiError } from '../../client/index.ts';
import { loadConfig } from '../../config/config.ts';
import { pushProvidersOf } from '../../bin/node-assembly.ts';
import { WebhookProvider, type WebhookBody } from '../../runtime/push/index.ts';
import { connect, eventually, newUser, ROOT, startServer, type ServerHandle, type TestUser } from '../support/server.ts';

const SECRET = 'test-webhook-secret-0123456789';
/** Short enough to keep the file fast, long enough for a burst of 20 HTTP sends to fit in one window. */
const COALESCE_MS = 1_500;
const MAX_ATTEMPTS = 3;

class Receiver {
  readonly pushes: WebhookBody[] = [];
  /** Requests per user, whatever the answer. */
  readonly requests = new Map<string, number>();
  badSignatures = 0;
  /** Per user: statuses to answer in turn (then 200); `always` answers that forever. */
  readonly plans = new Map<string, { statuses: number[]; always?: number }>();
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const want = Buffer.from(WebhookProvider.sign(SECRET, raw));
        const got = Buffer.from(String(req.headers['x-parley-signature'] ?? ''));
        if (got.length !== want.length || !timingSafeEqual(got, want)) {
          this.badSignatures++;
          res.writeHead(401).end();
          return;
        }
        const body = JSON.parse(raw.toString('utf8')) as WebhookBody;
        this.requests.set(body.user_id, (this.requests.get(body.user_id) ?? 0) + 1);
        const plan = this.plans.get(body.user_id);
        const status = plan?.statuses.shift() ?? plan?.always ?? 200;
        if (status === 200) this.pushes.push(body);
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/hook`;
  }

  for(userId: string): WebhookBody[] {
    return this.pushes.filter((p) => p.user_id === userId);
  }

  close(): Promise<void> {
    // Keep-alive connections from a node that did not stop would hold close() open forever.
    this.server?.closeAllConnections();
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

const pushFlags = (receiver: Receiver, coalesceMs = COALESCE_MS): Record<string, string> => ({
  'push-webhook': receiver.url,
  'push-webhook-secret': SECRET,
  'push-coalesce-ms': String(coalesceMs),
  'push-max-attempts': String(MAX_ATTEMPTS),
  'push-retry-base-ms': '100',
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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

let server: ServerHandle;
const receiver = new Receiver();

test.before(async () => {
  await receiver.start();
  server = await startServer({ flags: pushFlags(receiver) });
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

test.serial('push - recipient online: no push', async (t) => {
  const { a, b, channelId } = await pair();
  const bc = await connect(server, b, 'phone');
  await a.http.postMessage(channelId, 'm1', 'hello');
  t.true(await eventually(() => bc.deliveries.length === 1));
  await sleep(COALESCE_MS * 2);
  t.is(receiver.for(b.userId).length, 0);
  bc.client.close();
});

test.serial('push - recipient offline, one message: exactly one push naming the channel, the sender and the unread count, signed', async (t) => {
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

test.serial('push - a burst of 20 messages within the window: one push with unread_count 20', async (t) => {
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

test.serial('push - a muted channel produces none; unmuted, it pushes again', async (t) => {
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

test.serial('push - mute: members only, until_ms validated at and past its limits', async (t) => {
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

test.serial('push - a device connecting during the window gets the message: no push for it', async (t) => {
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

test.serial('push - provider answers 500 twice then 200: retried, sent once', async (t) => {
  const { a, b, channelId } = await pair();
  receiver.plans.set(b.userId, { statuses: [500, 503] });
  await a.http.postMessage(channelId, 'm1', 'retry me');
  t.true(await eventually(() => receiver.for(b.userId).length === 1, COALESCE_MS * 6));
  await sleep(COALESCE_MS);
  t.is(receiver.requests.get(b.userId), 3, 'two failures, one success');
  t.is(receiver.for(b.userId).length, 1);
});

test.serial('push - provider always 500: dead letter, shown by parleyctl push dead-letters, retried by it', async (t) => {
  const { a, b, channelId } = await pair();
  receiver.plans.set(b.userId, { statuses: [], always: 500 });
  await a.http.postMessage(channelId, 'm1', 'doomed');
  t.true(await eventually(() => (receiver.requests.get(b.userId) ?? 0) >= MAX_ATTEMPTS, COALESCE_MS * 8));
  await sleep(500);
  t.is(receiver.requests.get(b.userId), MAX_ATTEMPTS, 'no attempt past push_max_attempts');

  const listed = await parleyctl(['push', 'dead-letters', '--data-dir', server.dataDir, '--json']);
  t.is(listed.code, 0, listed.stderr);
  const letters = (JSON.parse(listed.stdout) as { dead_letters: { job: { id: string; user_id: string }; attempts: number; last_error: string }[] }).dead_letters;
  const mine = letters.find((d) => d.job.user_id === b.userId);
  t.truthy(mine);
  t.is(mine!.attempts, MAX_ATTEMPTS);
  t.regex(mine!.last_error, /500/);
  const table = await parleyctl(['push', 'dead-letters', '--data-dir', server.dataDir]);
  t.regex(table.stdout, /^ID\s+USER\s+CHANNEL\s+ATTEMPTS/);
  t.true(table.stdout.includes(mine!.job.id));

  receiver.plans.delete(b.userId);
  const retried = await parleyctl(['push', 'dead-letters', '--data-dir', server.dataDir, '--retry', mine!.job.id]);
  t.is(retried.code, 0, retried.stderr);
  t.true(await eventually(() => receiver.for(b.userId).length === 1, 10_000));
  t.is(receiver.for(b.userId)[0]!.channel_id, channelId);
  const after = await parleyctl(['push', 'dead-letters', '--data-dir', server.dataDir, '--json']);
  t.false((JSON.parse(after.stdout) as { dead_letters: { job: { user_id: string } }[] }).dead_letters.some((d) => d.job.user_id === b.userId));
  await sleep(COALESCE_MS);
  t.is(receiver.for(b.userId).length, 1, 'sent once');
  const unknown = await parleyctl(['push', 'dead-letters', '--data-dir', server.dataDir, '--retry', 'nope']);
  t.not(unknown.code, 0);
});

test.serial('push - a node SIGKILLed with jobs pending: after restart every job is sent once, none twice', async (t) => {
  const own = new Receiver();
  await own.start();
  // A long window: the kill lands while every job waits in the queue.
  const flags = pushFlags(own, 3_000);
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

test('push config - webhook without secret, secret without webhook, non-http URL: CONFIG errors at start', async (t) => {
  const cfg = (flags: Record<string, string>) => loadConfig(flags, {});
  for (const flags of <Record<string, string>[]>[{ push_webhook: 'http://127.0.0.1:1/x' }, { push_webhook_secret: 's' }, { push_webhook: 'ftp://x/y', push_webhook_secret: 's' }, { push_webhook: 'not a url', push_webhook_secret: 's' }]) {
    const err = t.throws(() => pushProvidersOf(cfg(flags)));
    t.is((err as { code?: string }).code, 'CONFIG', JSON.stringify(flags));
  }
  t.is(pushProvidersOf(cfg({ push_webhook: 'https://ops.example/push', push_webhook_secret: 's' })).length, 1);
  t.is(pushProvidersOf(cfg({})).length, 0);
  // And a real start refuses it, naming the setting.
  const failed = await startServer({ flags: { 'push-webhook': 'http://127.0.0.1:9/x' } }).then(
    () => 'started',
    (err: unknown) => String(err),
  );
  t.regex(failed, /push-webhook-secret/);
});

test('push config - coalesce and attempts bounds, at and past; include-text as a bare flag, key and env', (t) => {
  t.is(loadConfig({}, {}).push_coalesce_ms, 10_000);
  t.is(loadConfig({}, {}).push_include_text, false);
  t.is(loadConfig({ push_coalesce_ms: '50' }, {}).push_coalesce_ms, 50);
  t.throws(() => loadConfig({ push_coalesce_ms: '49' }, {}), { message: /at least 50/ });
  t.is(loadConfig({ push_coalesce_ms: '3600000' }, {}).push_coalesce_ms, 3_600_000);
  t.throws(() => loadConfig({ push_coalesce_ms: '3600001' }, {}), { message: /at most 3600000/ });
  t.is(loadConfig({}, { PARLEY_PUSH_COALESCE_MS: '250' }).push_coalesce_ms, 250);
  t.throws(() => loadConfig({ push_max_attempts: '0' }, {}));
  t.is(loadConfig({ push_max_attempts: '1' }, {}).push_max_attempts, 1);
  t.is(loadConfig({ push_include_text: true }, {}).push_include_text, true);
  t.is(loadConfig({}, { PARLEY_PUSH_INCLUDE_TEXT: 'true' }).push_include_text, true);
});

test('push - --push-include-text adds the text', async (t) => {
  const own = new Receiver();
  await own.start();
  const node = await startServer({ flags: { ...pushFlags(own, 1_000), 'push-include-text': 'true' } });
  try {
    const a = await newUser(node, 'snd');
    const b = await newUser(node, 'rcp');
    const { channel_id } = await a.http.openDm(b.userId);
    await a.http.postMessage(channel_id, 'm1', 'first');
    await a.http.postMessage(channel_id, 'm2', 'the latest words');
    t.true(await eventually(() => own.pushes.length === 1, 15_000));
    t.is(own.pushes[0]!.text, 'the latest words');
  } finally {
    await node.stop();
    await own.close();
  }
});
