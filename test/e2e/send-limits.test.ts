/**
 * Send admission on a real parleyd: one allowance per user across WebSocket and HTTP and all of
 * the user's devices (`send_burst`, then `send_rate` per second), and one in-flight bound per node
 * across both paths (`max_inflight_sends`).
 */
import test from 'ava';
import { ParleyApiError, ParleyError, type SendAck } from '../../client/index.ts';
import { connect, newUser, startServer, type ServerHandle } from '../support/server.ts';

const BURST = 8;
const RATE = 1;

/** A send's outcome as the test compares it: 'ok', or where it was refused and with what. */
async function outcome(send: Promise<unknown>): Promise<string> {
  try {
    await send;
    return 'ok';
  } catch (err) {
    if (err instanceof ParleyApiError) return `http ${err.status} ${err.code}`;
    if (err instanceof ParleyError) return `ws ${err.code}`;
    throw err;
  }
}

test('send limits - one allowance per user across WebSocket, HTTP and two devices: the burst, then 1/rate s per send; other users unaffected', async (t) => {
  // `os` durability: sends take milliseconds, so the burst fits well inside the 1 s one token takes.
  const server = await startServer({ flags: { 'send-rate': String(RATE), 'send-burst': String(BURST), durability: 'os' } });
  try {
    const a = await newUser(server, 'a');
    const b = await newUser(server, 'b');
    const c = await newUser(server, 'c');
    const { channel_id } = await a.http.openDm(b.userId);
    const phone = await connect(server, a, 'phone', { sendRetries: 0 });
    const laptop = await connect(server, a, 'laptop', { sendRetries: 0 });
    // Interleaved: HTTP, phone, laptop, HTTP, ... Each awaited, so the order of admission is known.
    const paths = [
      (i: number) => a.http.postMessage(channel_id, `m${i}`, `burst ${i}`),
      (i: number) => phone.client.send(channel_id, `burst ${i}`, `m${i}`),
      (i: number) => laptop.client.send(channel_id, `burst ${i}`, `m${i}`),
    ];
    const startedMs = Date.now();
    const burst: string[] = [];
    for (let i = 0; i < BURST; i++) burst.push(await outcome(paths[i % 3]!(i)));
    const next = [
      await outcome(a.http.postMessage(channel_id, 'over-http', 'one too many')),
      await outcome(phone.client.send(channel_id, 'one too many', 'over-phone')),
      await outcome(laptop.client.send(channel_id, 'one too many', 'over-laptop')),
    ];
    const elapsedMs = Date.now() - startedMs;
    t.deepEqual(burst, Array<string>(BURST).fill('ok'), 'the whole burst is accepted');
    t.deepEqual(next, ['http 429 RATE_LIMITED', 'ws RATE_LIMITED', 'ws RATE_LIMITED'], `past the burst, every path is refused (${elapsedMs} ms after the first send)`);

    // Another user has an allowance of their own, whole while a's is spent.
    const { channel_id: other } = await c.http.openDm(b.userId);
    const cc = await connect(server, c, 'c-phone', { sendRetries: 0 });
    const others: string[] = [];
    for (let i = 0; i < BURST; i++) others.push(await outcome(i % 2 ? cc.client.send(other, `c ${i}`) : c.http.postMessage(other, `c${i}`, `c ${i}`)));
    t.deepEqual(others, Array<string>(BURST).fill('ok'));

    // 1/rate s after the refusals a has one send again, on any path.
    await new Promise((r) => setTimeout(r, 1_000 / RATE));
    t.is(await outcome(laptop.client.send(channel_id, 'after waiting', 'after')), 'ok');

    // Refused sends wrote nothing: the history holds the burst and the one after the wait.
    const { messages } = await a.http.history(channel_id, { limit: 100 });
    t.is(messages.length, BURST + 1);
    t.false(messages.some((m) => m.client_msg_id.startsWith('over-')));
    for (const x of [phone, laptop, cc]) x.client.close();
  } finally {
    await server.stop();
  }
});

/** Fires sends of one user concurrently, over HTTP and a socket, and returns their outcomes. */
async function concurrentSends(server: ServerHandle, count: number): Promise<{ outcomes: string[]; stored: number }> {
  const a = await newUser(server, 'a');
  const b = await newUser(server, 'b');
  const { channel_id } = await a.http.openDm(b.userId);
  const ws = await connect(server, a, 'phone', { sendRetries: 0 });
  const sends: Promise<SendAck | object>[] = [];
  for (let i = 0; i < count; i++) sends.push(i % 4 === 3 ? ws.client.send(channel_id, `c ${i}`, `c${i}`) : a.http.postMessage(channel_id, `c${i}`, `c ${i}`));
  const outcomes = await Promise.all(sends.map(outcome));
  const { messages } = await a.http.history(channel_id, { limit: 100 });
  ws.client.close();
  return { outcomes, stored: messages.length };
}

test('send limits - the node-wide in-flight bound covers HTTP sends too: at the bound all pass, past it 503 OVERLOADED (and OVERLOADED over WebSocket), nothing refused is stored', async (t) => {
  const server = await startServer({ flags: { 'max-inflight-sends': '1', 'send-rate': '100000', 'send-burst': '100000' } });
  try {
    // At the bound: one send at a time never finds the slot taken.
    const a = await newUser(server);
    const b = await newUser(server);
    const { channel_id } = await a.http.openDm(b.userId);
    for (let i = 0; i < 5; i++) await t.notThrowsAsync(a.http.postMessage(channel_id, `seq${i}`, `one at a time ${i}`));

    // Past it: 40 at once, while every send holds its slot for a durable write.
    const { outcomes, stored } = await concurrentSends(server, 40);
    const counts = new Map<string, number>();
    for (const o of outcomes) counts.set(o, (counts.get(o) ?? 0) + 1);
    const ok = counts.get('ok') ?? 0;
    const refused = (counts.get('http 503 OVERLOADED') ?? 0) + (counts.get('ws OVERLOADED') ?? 0);
    t.true(ok >= 1, `some sends pass: ${JSON.stringify([...counts])}`);
    t.true((counts.get('http 503 OVERLOADED') ?? 0) >= 1, `HTTP sends are shed: ${JSON.stringify([...counts])}`);
    t.is(ok + refused, 40, `only accepted or OVERLOADED: ${JSON.stringify([...counts])}`);
    t.is(stored, ok, 'exactly the accepted sends are stored');
    // Shedding is an answer, not a fault: no error log line per refused request.
    t.false(server.logs.some((l) => l.includes('"http handler failed"')));
  } finally {
    await server.stop();
  }
});
