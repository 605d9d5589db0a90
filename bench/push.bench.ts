/**
 * Push notifications for offline users, one node: how long from a message to its push at the
 * receiver, and how many pushes per second the node sends to a local receiver.
 *
 * Run: node --import tsx bench/push.bench.ts [--users 1000] [--rate 20] [--latency-seconds 5]
 *        [--concurrency 64] [--coalesce-ms 50] [--redis URL] [--webpush] [--source] [--out FILE]
 *
 * - One parleyd (the compiled dist/, as `npm start` runs it; `--source` runs bin/parleyd.ts under
 *   tsx) on a fresh SQLite data dir, with `--push-webhook` pointing at a receiver in this process
 *   that checks every HMAC signature (test/support/webhook-receiver.ts); `--redis URL` puts the
 *   push queue (and presence) in that Redis; `--webpush` also registers a Web Push subscription
 *   for every recipient at a push service in this process that checks VAPID and decrypts each
 *   payload (test/support/web-push-receiver.ts), so each message makes two pushes.
 * - `--users` recipients and a sender for every 20 of them, provisioned with `parleyctl users
 *   provision`; the recipients never connect, so every message to them is an offline entry.
 * - Latency: `--rate` messages per second for `--latency-seconds`, each to a recipient of its
 *   own, over HTTP; the time is from just before the POST to the push's arrival (message_id
 *   ties them), so it holds the coalescing window (`--coalesce-ms`, at least 50 ms: the first
 *   offline entry waits that long for more) and the notifier's poll interval (a fifth of the
 *   window, at least 25 ms).
 * - Throughput: one message to each remaining recipient, `--concurrency` POSTs at a time; pushes/s
 *   is the pushes received over the time from the first to the last of them. When it is close to
 *   the send rate, sending was the limit, not the notifier.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ParleyHttp } from '../client/index.ts';
import { startServer, type ServerHandle } from '../test/support/server.ts';
import { startWebPushReceiver, type WebPushReceiver } from '../test/support/web-push-receiver.ts';
import { WebhookReceiver } from '../test/support/webhook-receiver.ts';
import { ensureBuild } from './lib/build.ts';
import { CLK_TCK, readProc } from './lib/proc.ts';
import { runParleyctl, type ProvisionedUser } from './lib/targets.ts';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '20' },
    'latency-seconds': { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '64' },
    'coalesce-ms': { type: 'string', default: '50' },
    redis: { type: 'string' },
    webpush: { type: 'boolean', default: false },
    source: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const recipientCount = Number(values.users);
const rate = Number(values.rate);
const latencyCount = Math.min(recipientCount, Math.round(rate * Number(values['latency-seconds'])));
const concurrency = Number(values.concurrency);
const coalesceMs = Number(values['coalesce-ms']);
const SECRET = 'bench-push-webhook-secret-0123456789';
/** Recipients per sender (a sender's messages go through its own rate limit and channel actors). */
const PER_SENDER = 20;

interface Summary {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

function summarize(latencies: readonly number[]): Summary {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { count: sorted.length, p50: Math.round(at(0.5)), p99: Math.round(at(0.99)), max: Math.round(sorted.at(-1) ?? 0) };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs `work` over `items`, `limit` at a time. */
async function pooled<T>(items: readonly T[], limit: number, work: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await work(items[i]!, i);
      }
    }),
  );
}

interface Pair {
  readonly sender: ParleyHttp;
  readonly recipient: ProvisionedUser;
  channelId: string;
}

/** Arrival time of each message's push at each receiver (by message_id). */
function arrivals(hook: WebhookReceiver, webPush: WebPushReceiver | undefined): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const add = (id: unknown, at: number): void => {
    if (typeof id !== 'string') return;
    const l = out.get(id) ?? [];
    l.push(at);
    out.set(id, l);
  };
  for (const p of hook.pushes) add(p.message_id, p.receivedAtMs);
  for (const p of webPush?.received ?? []) add(p.payload['message_id'], p.atMs);
  return out;
}

/** Send-to-arrival times of these sends (message id, send time), one per push received. */
function delays(sends: readonly [string, number][], arrived: Map<string, number[]>): number[] {
  return sends.flatMap(([id, t0]) => (arrived.get(id) ?? []).map((at) => at - t0));
}

async function main(): Promise<void> {
  const perMessage = values.webpush ? 2 : 1;
  if (!values.source) ensureBuild((line) => console.error(line));
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-push-bench-'));
  const hook = new WebhookReceiver(SECRET);
  await hook.start();
  const webPush = values.webpush ? await startWebPushReceiver() : undefined;
  let server: ServerHandle | undefined;
  try {
    const senderCount = Math.ceil(recipientCount / PER_SENDER);
    const { users } = await runParleyctl(dataDir, recipientCount + senderCount);
    const senders = users.slice(recipientCount);
    server = await startServer({
      dataDir,
      entry: values.source ? 'source' : 'dist',
      flags: {
        'push-webhook': hook.url,
        'push-webhook-secret': SECRET,
        'push-coalesce-ms': String(coalesceMs),
        'send-rate': '10000000',
        'send-burst': '10000000',
        ...(values.webpush ? { 'push-allow-insecure': 'true' } : {}),
        ...(values.redis ? { redis: values.redis } : {}),
      },
    });
    const base = server.baseUrl;
    const pairs: Pair[] = users.slice(0, recipientCount).map((recipient, i) => ({ sender: new ParleyHttp(base, senders[Math.floor(i / PER_SENDER)]!.token), recipient, channelId: '' }));
    await pooled(pairs, 32, async (p) => {
      p.channelId = (await p.sender.openDm(p.recipient.user_id)).channel_id;
    });
    if (webPush) {
      const { key } = await new ParleyHttp(base, pairs[0]!.recipient.token).pushPublicKey();
      await pooled(pairs, 32, async (p) => {
        const sub = webPush.subscription({ applicationServerKey: key });
        await new ParleyHttp(base, p.recipient.token).registerPush('phone', { endpoint: sub.endpoint, keys: sub.keys });
      });
    }
    console.error(`bench: ${recipientCount} offline recipients, ${senderCount} senders, window ${coalesceMs} ms${values.redis ? ', queue in Redis' : ', queue in the store'}${webPush ? ', webhook + Web Push' : ', webhook'}`);

    const sentAt = new Map<string, number>();
    const send = async (p: Pair, tag: string): Promise<void> => {
      const t0 = Date.now();
      const r = await p.sender.postMessage(p.channelId, `${tag}-${p.recipient.user_id}`, 'hello, are you there?');
      sentAt.set(r.message_id, t0);
    };
    const waitFor = async (count: number, timeoutMs: number): Promise<boolean> => {
      const end = Date.now() + timeoutMs;
      while (hook.pushes.length + (webPush?.received.length ?? 0) < count * perMessage && Date.now() < end) await sleep(20);
      return hook.pushes.length + (webPush?.received.length ?? 0) >= count * perMessage;
    };

    // Latency: paced, each message to a recipient of its own.
    const paced = pairs.slice(0, latencyCount);
    const start = Date.now();
    await Promise.all(
      paced.map(async (p, i) => {
        await sleep(Math.max(0, start + (i * 1000) / rate - Date.now()));
        await send(p, 'lat');
      }),
    );
    await waitFor(latencyCount, 20_000);
    const latencySends = [...sentAt];
    const latency = summarize(delays(latencySends, arrivals(hook, webPush)));
    const latencySent = latencySends.length;

    // Throughput: one message to each remaining recipient, as fast as the sends go.
    const rest = pairs.slice(latencyCount);
    const before = { hook: hook.pushes.length, web: webPush?.received.length ?? 0 };
    const pid = server.proc.pid!;
    const cpu0 = readProc(pid);
    const sendStart = Date.now();
    await pooled(rest, concurrency, (p) => send(p, 'tp'));
    const sendEnd = Date.now();
    const cpu1 = readProc(pid);
    const complete = await waitFor(latencyCount + rest.length, 60_000);
    const drainEnd = Date.now();
    const cpu2 = readProc(pid);
    /** The node's CPU (all threads, and its event loop) over a phase, in % of one core. */
    const cpuPct = (a: typeof cpu0, b: typeof cpu0, ms: number) =>
      a && b ? { process: Math.round(((b.ticks - a.ticks) * (1000 / CLK_TCK) * 100) / Math.max(1, ms)), main_thread: Math.round(((b.mainTicks - a.mainTicks) * (1000 / CLK_TCK) * 100) / Math.max(1, ms)) } : null;
    const times = [...hook.pushes.slice(before.hook).map((p) => p.receivedAtMs), ...(webPush?.received.slice(before.web).map((p) => p.atMs) ?? [])].sort((a, b) => a - b);
    const tpLatency = summarize(delays([...sentAt].slice(latencySent), arrivals(hook, webPush)));
    const span = Math.max(1, (times.at(-1) ?? 0) - (times[0] ?? 0));
    // What the notifier alone does: the backlog it had when the sends ended, over the time to clear it.
    const backlog = times.filter((at) => at > sendEnd);
    const drainSpan = Math.max(1, (backlog.at(-1) ?? sendEnd) - sendEnd);
    const repeats = hook.repeated().length;
    const result = {
      users: recipientCount,
      coalesce_ms: coalesceMs,
      queue: values.redis ? 'redis' : 'store',
      providers: webPush ? ['webhook', 'webpush'] : ['webhook'],
      latency: { messages: latencySent, rate_per_s: rate, send_to_push_ms: latency },
      throughput: {
        messages: rest.length,
        sends_per_s: Math.round((rest.length * 1000) / Math.max(1, sendEnd - sendStart)),
        pushes: times.length,
        pushes_per_s: Math.round((times.length * 1000) / span),
        drain_after_last_send_ms: drainEnd - sendEnd,
        backlog_at_last_send: backlog.length,
        backlog_pushes_per_s: backlog.length === 0 ? null : Math.round((backlog.length * 1000) / drainSpan),
        send_to_push_ms: tpLatency,
        complete,
        server_cpu_pct: { sending: cpuPct(cpu0, cpu1, sendEnd - sendStart), draining: cpuPct(cpu1, cpu2, drainEnd - sendEnd) },
      },
      repeated_notification_ids: repeats,
      bad_signatures: hook.badSignatures,
      webpush_rejected: webPush?.rejected.length ?? 0,
    };
    console.log(JSON.stringify(result, null, 2));
    console.error(
      `latency (${latencySent} messages at ${rate}/s): send to push p50 ${latency.p50} ms, p99 ${latency.p99} ms (window ${coalesceMs} ms)\n` +
        `throughput (${rest.length} messages): sends ${result.throughput.sends_per_s}/s, pushes ${result.throughput.pushes_per_s}/s (backlog of ${backlog.length} cleared at ${result.throughput.backlog_pushes_per_s ?? '-'}/s), p50 ${tpLatency.p50} ms, p99 ${tpLatency.p99} ms${complete ? '' : ' (INCOMPLETE)'}`,
    );
    if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 2) + '\n');
  } finally {
    await server?.stop();
    await hook.close();
    await webPush?.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
