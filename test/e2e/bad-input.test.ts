import test from 'ava';
import { connect as tcp } from 'node:net';
import WebSocket from 'ws';
import { decodeServerFrame, encodeClientFrame } from '../../proto/index.ts';
import type { ServerFrame } from '../../proto/index.ts';
import { connect, eventually, newUser, startServer, type ServerHandle, type TestUser } from '../support/server.ts';

let server: ServerHandle;

test.before(async () => {
  // A small per-user send rate keeps the rate-limit test short; the contract's default (50/s,
  // burst 100) is checked against config in test/config.
  server = await startServer({ flags: { 'send-rate': '20', 'send-burst': '40' } });
});

test.after.always(async () => {
  await server?.stop();
});

/** A raw socket that records decoded frames and how it closed. */
async function raw(): Promise<{ ws: WebSocket; frames: ServerFrame[]; closed: Promise<number> }> {
  const ws = new WebSocket(server.wsUrl);
  const frames: ServerFrame[] = [];
  ws.on('message', (data: Buffer) => frames.push(decodeServerFrame(new Uint8Array(data))));
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return { ws, frames, closed };
}

async function hello(user: TestUser): Promise<Awaited<ReturnType<typeof raw>>> {
  const r = await raw();
  r.ws.send(encodeClientFrame(1, 'hello', { token: user.token, device_id: 'raw', last_inbox_seq: 0 }));
  await eventually(() => r.frames.some((f) => f.body === 'welcome'));
  return r;
}

/** After every refusal, the server must still serve a normal client. */
async function stillServes(t: import('ava').ExecutionContext): Promise<void> {
  const a = await newUser(server);
  const b = await newUser(server);
  const { channel_id } = await a.http.openDm(b.userId);
  const c = await connect(server, a);
  const ack = await c.client.send(channel_id, 'still here');
  t.is(ack.channel_seq, 1);
  c.client.close();
}

test('bad input - an undecodable binary frame gets BAD_FRAME and close 1008; other sockets are unaffected', async (t) => {
  const u = await newUser(server);
  const bystander = await hello(u);
  const r = await raw();
  r.ws.send(Buffer.from([0xff, 0xff, 0xff, 0xff]));
  t.is(await r.closed, 1008);
  t.is(r.frames[0]?.body, 'error');
  t.is(r.frames[0]?.body === 'error' && r.frames[0].error.code, 'BAD_FRAME');
  t.is(bystander.ws.readyState, WebSocket.OPEN);
  bystander.ws.close();
  await stillServes(t);
});

test('bad input - a text frame gets BAD_FRAME and close 1008', async (t) => {
  const r = await raw();
  r.ws.send('{"hello":{}}');
  t.is(await r.closed, 1008);
  t.is(r.frames[0]?.body === 'error' && r.frames[0].error.code, 'BAD_FRAME');
  await stillServes(t);
});

test('bad input - any frame before hello gets UNAUTHENTICATED, then close', async (t) => {
  const r = await raw();
  r.ws.send(encodeClientFrame(3, 'send', { channel_id: 'x', client_msg_id: 'y', text: 'z' }));
  t.is(await r.closed, 1008);
  t.is(r.frames[0]?.body === 'error' && r.frames[0].error.code, 'UNAUTHENTICATED');
  t.is(r.frames[0]?.ref, 3);
});

test('bad input - a bad token and an expired token get UNAUTHENTICATED, then close', async (t) => {
  const u = await newUser(server);
  for (const token of ['nonsense', u.token.slice(0, -2) + 'xx', expired(u.token)]) {
    const r = await raw();
    r.ws.send(encodeClientFrame(1, 'hello', { token, device_id: 'd', last_inbox_seq: 0 }));
    t.is(await r.closed, 1008);
    t.is(r.frames[0]?.body === 'error' && r.frames[0].error.code, 'UNAUTHENTICATED');
  }
  await stillServes(t);
});

/** Re-signs nothing: an expired token is one whose payload says so, which breaks its signature too. */
function expired(token: string): string {
  const [v, payload, sig] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as { exp: number };
  claims.exp = 1;
  return `${v}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`;
}

test('bad input - send to a channel you are not in gets FORBIDDEN and the socket stays open; so does its history', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  const outsider = await newUser(server);
  const { channel_id } = await a.http.openDm(b.userId);
  const c = await connect(server, outsider);
  const err = await t.throwsAsync(c.client.send(channel_id, 'let me in'));
  t.is((err as { code?: string }).code, 'FORBIDDEN');
  const err2 = await t.throwsAsync(c.client.history(channel_id));
  t.is((err2 as { code?: string }).code, 'FORBIDDEN');
  const httpErr = await t.throwsAsync(outsider.http.postMessage(channel_id, 'x', 'y'));
  t.is((httpErr as { status?: number }).status, 403);
  // Still open: a legal request on the same socket works.
  t.deepEqual(await c.client.presence([outsider.userId]).then((p) => p.length), 1);
  c.client.close();
});

test('limits - text of exactly 100,000 code points is accepted; 100,001 gets TEXT_TOO_LONG; empty gets INVALID_ARGUMENT', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  const { channel_id } = await a.http.openDm(b.userId);
  const c = await connect(server, a);
  // Astral characters: 100,000 code points are 200,000 UTF-16 units and 400,000 UTF-8 bytes.
  const atLimit = '😀'.repeat(100_000);
  const ack = await c.client.send(channel_id, atLimit);
  t.is(ack.channel_seq, 1);
  const { messages } = await a.http.history(channel_id, { limit: 1 });
  t.is(messages[0]!.text, atLimit);
  const over = await t.throwsAsync(c.client.send(channel_id, 'a'.repeat(100_001)));
  t.is((over as { code?: string }).code, 'TEXT_TOO_LONG');
  const overAstral = await t.throwsAsync(c.client.send(channel_id, '😀'.repeat(100_001)));
  t.is((overAstral as { code?: string }).code, 'TEXT_TOO_LONG');
  const empty = await t.throwsAsync(c.client.send(channel_id, ''));
  t.is((empty as { code?: string }).code, 'INVALID_ARGUMENT');
  const httpOver = await t.throwsAsync(a.http.postMessage(channel_id, 'long', 'b'.repeat(100_001)));
  t.is((httpOver as { status?: number; code?: string }).status, 400);
  t.is((httpOver as { code?: string }).code, 'TEXT_TOO_LONG');
  await t.notThrowsAsync(a.http.postMessage(channel_id, 'exact', 'c'.repeat(100_000)));
  // Nothing refused was stored.
  const all = await a.http.history(channel_id, { limit: 100 });
  t.is(all.messages.length, 2);
  c.client.close();
});

test('limits - a frame over the maximum payload is refused (socket closed), not buffered', async (t) => {
  const u = await newUser(server);
  const r = await hello(u);
  r.ws.send(Buffer.alloc(600 * 1024, 1)); // over max_frame_bytes (512 KiB)
  const code = await r.closed;
  t.true(code === 1009 || code === 1006, `close code ${code}`);
  await stillServes(t);
});

test('limits - over WebSocket the largest valid send fits a frame; a frame of exactly max_frame_bytes is read, one byte more closes 1009', async (t) => {
  const MAX_FRAME = 512 * 1024; // max_frame_bytes, default
  const a = await newUser(server);
  const b = await newUser(server);
  const { channel_id } = await a.http.openDm(b.userId);
  const r = await hello(a);
  // Every id at its longest in 3-byte UTF-8, the text in 4-byte code points.
  const text = emoji(100_000);
  const largest = encodeClientFrame(2, 'send', { channel_id, client_msg_id: '€'.repeat(128), text });
  t.true(largest.length > 400_000 + 384 && largest.length <= MAX_FRAME, `frame of ${largest.length} bytes`);
  r.ws.send(largest);
  t.true(await eventually(() => r.frames.some((f) => f.ref === 2), 10_000));
  t.is(r.frames.find((f) => f.ref === 2)?.body, 'send_ack');
  t.is((await a.http.history(channel_id, { limit: 1 })).messages[0]!.text, text);

  // Frames of an exact size: ASCII text grown until the encoding is exactly `bytes` long.
  const frameOf = (ref: number, bytes: number): Uint8Array => {
    let n = bytes - 64;
    for (let i = 0; i < 5; i++) {
      const f = encodeClientFrame(ref, 'send', { channel_id, client_msg_id: `x${ref}`, text: 'a'.repeat(n) });
      if (f.length === bytes) return f;
      n += bytes - f.length;
    }
    throw new Error(`no frame of ${bytes} bytes`);
  };
  r.ws.send(frameOf(3, MAX_FRAME)); // read whole, then refused for its text, not for its size
  t.true(await eventually(() => r.frames.some((f) => f.ref === 3), 10_000));
  const atMax = r.frames.find((f) => f.ref === 3);
  t.is(atMax?.body === 'error' && atMax.error.code, 'TEXT_TOO_LONG');
  t.is(r.ws.readyState, WebSocket.OPEN);
  r.ws.send(frameOf(4, MAX_FRAME + 1));
  const code = await r.closed;
  t.true(code === 1009 || code === 1006, `close code ${code}`);
  t.false(r.frames.some((f) => f.ref === 4));
});

test('limits - sending faster than the user\'s rate gets RATE_LIMITED and loses nothing sent before', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  const { channel_id } = await a.http.openDm(b.userId);
  const bc = await connect(server, b);
  const c = await connect(server, a);
  // Burst 40 at 20/s: fire 60 at once; some must be refused, and every accepted one delivered.
  const results = await Promise.allSettled(Array.from({ length: 60 }, (_, i) => c.client.send(channel_id, `burst ${i}`, `rl-${i}`)));
  const ok = results.filter((r) => r.status === 'fulfilled');
  const limited = results.filter((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'RATE_LIMITED');
  t.true(limited.length > 0, 'some sends were rate limited');
  t.is(ok.length + limited.length, 60);
  t.true(ok.length >= 40);
  t.true(await eventually(() => bc.deliveries.length === ok.length));
  const { messages } = await a.http.history(channel_id, { limit: 100 });
  t.is(messages.length, ok.length);
  // After a pause the session may send again.
  await new Promise((r) => setTimeout(r, 300));
  await t.notThrowsAsync(c.client.send(channel_id, 'after pause'));
  c.client.close();
  bc.client.close();
});

async function httpRaw(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; json: { error?: { code: string; message: string } } }> {
  const res = await fetch(server.baseUrl + path, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as { error?: { code: string; message: string } }) : {} };
}

test('http - malformed JSON 400, missing token 401, unknown route 404; all with the error envelope', async (t) => {
  const malformed = await httpRaw('POST', '/v1/users', '{"username": ');
  t.is(malformed.status, 400);
  t.is(malformed.json.error?.code, 'INVALID_ARGUMENT');
  const noToken = await httpRaw('GET', '/v1/channels');
  t.is(noToken.status, 401);
  t.is(noToken.json.error?.code, 'UNAUTHENTICATED');
  const badToken = await httpRaw('GET', '/v1/channels', undefined, { authorization: 'Bearer nope' });
  t.is(badToken.status, 401);
  const unknown = await httpRaw('GET', '/v1/nothing-here');
  t.is(unknown.status, 404);
  t.is(unknown.json.error?.code, 'NOT_FOUND');
  await stillServes(t);
});

const MAX_BODY = 2 * 1024 * 1024; // max_http_body_bytes, default

/** What Python's `json.dumps` writes by default: every non-ASCII UTF-16 unit as a \uXXXX escape. */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `count` astral code points (emoji U+1F600..U+1F64F in turn), each 12 bytes as escaped JSON. */
function emoji(count: number): string {
  return Array.from({ length: count }, (_, i) => String.fromCodePoint(0x1f600 + (i % 80))).join('');
}

test('limits - over HTTP, 100,000 emoji as \\u escapes (12 bytes each) with a maximal client_msg_id are accepted and read back intact; 100,001 get TEXT_TOO_LONG', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  const { channel_id } = await a.http.openDm(b.userId);
  const post = (body: string) =>
    httpRaw('POST', `/v1/channels/${channel_id}/messages`, body, { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' });
  const text = emoji(100_000);
  const clientMsgId = emoji(64); // 128 UTF-16 units, the most allowed, 6 bytes each escaped
  t.is(clientMsgId.length, 128);
  const body = asciiJson({ client_msg_id: clientMsgId, text });
  t.true(Buffer.byteLength(body) > 1_200_000 + 768, `body of ${Buffer.byteLength(body)} bytes`);
  const accepted = await post(body);
  t.is(accepted.status, 201, JSON.stringify(accepted.json));
  const { messages } = await a.http.history(channel_id, { limit: 10 });
  t.is(messages.length, 1);
  t.is(messages[0]!.text, text);
  t.is(messages[0]!.client_msg_id, clientMsgId);

  const overBody = asciiJson({ client_msg_id: 'over', text: emoji(100_001) });
  t.true(Buffer.byteLength(overBody) < MAX_BODY, 'under the body cap: the text limit refuses it, not the body cap');
  const over = await post(overBody);
  t.is(over.status, 400);
  t.is(over.json.error?.code, 'TEXT_TOO_LONG');
  t.is((await a.http.history(channel_id, { limit: 10 })).messages.length, 1, 'nothing refused was stored');
});

/** Writes `head` then `body` on a raw TCP connection; resolves with what came back (or '' after `waitMs`). */
async function rawHttp(head: string, body: Buffer[], waitMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tcp(server.port, '127.0.0.1', () => {
      s.write(head);
      for (const b of body) s.write(b);
    });
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(got);
    }, waitMs);
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      if (got) resolve(got);
      else reject(err);
    });
  });
}

test('limits - an HTTP body of exactly 2 MiB is read; 2 MiB + 1 gets 413 before it is read whole', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  const { channel_id } = await a.http.openDm(b.userId);
  const headers = { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' };
  const path = `/v1/channels/${channel_id}/messages`;
  // A valid send padded with whitespace (legal between JSON tokens) to exactly the cap.
  const json = asciiJson({ client_msg_id: 'exact', text: emoji(100_000) });
  const exact = Buffer.from(json.slice(0, -1) + ' '.repeat(MAX_BODY - json.length) + '}');
  t.is(exact.length, MAX_BODY);
  const atCap = await httpRaw('POST', path, exact, headers);
  t.is(atCap.status, 201, JSON.stringify(atCap.json));

  const big = await httpRaw('POST', path, Buffer.concat([exact, Buffer.from(' ')]), headers);
  t.is(big.status, 413);
  t.is(big.json.error?.code, 'PAYLOAD_TOO_LARGE');

  // Declared too long: refused on the headers, with 1 KiB of the 2 MiB + 1 sent.
  const head = (framing: string) => `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${a.token}\r\n${framing}\r\n\r\n`;
  const declared = await rawHttp(head(`content-length: ${MAX_BODY + 1}`), [Buffer.alloc(1024, 0x20)]);
  t.regex(declared, /^HTTP\/1\.1 413 /);
  t.regex(declared, /PAYLOAD_TOO_LARGE/);
  // Length unknown (chunked): refused once the count passes the cap, though the body never ends.
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  const chunks = Array.from({ length: MAX_BODY / chunk.length }, () => Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]));
  const streamed = await rawHttp(head('transfer-encoding: chunked'), [...chunks, Buffer.from('1\r\n \r\n')]);
  t.regex(streamed, /^HTTP\/1\.1 413 /);

  t.is((await a.http.history(channel_id, { limit: 10 })).messages.length, 1, 'only the body at the cap was stored');
  await stillServes(t);
});

test('http - signup validation: username 3-32 of a-z 0-9 _ . -, password at least 8; duplicate 409; wrong password 401', async (t) => {
  const post = (b: unknown) => httpRaw('POST', '/v1/users', JSON.stringify(b), { 'content-type': 'application/json' });
  t.is((await post({ username: 'ab', password: 'password1' })).status, 400);
  t.is((await post({ username: 'a'.repeat(33), password: 'password1' })).status, 400);
  t.is((await post({ username: 'Upper', password: 'password1' })).status, 400);
  t.is((await post({ username: `x${process.pid}ok`, password: '1234567' })).status, 400);
  const name = `e${process.pid}${Date.now() % 100000}`;
  t.is((await post({ username: name.padEnd(32, '_').slice(0, 32), password: '12345678' })).status, 201);
  t.is((await post({ username: 'abc' + String(process.pid).slice(0, 3), password: '12345678' })).status, 201);
  t.is((await post({ username: 'abc' + String(process.pid).slice(0, 3), password: '12345678' })).status, 409);
  const login = await httpRaw('POST', '/v1/sessions', JSON.stringify({ username: 'abc' + String(process.pid).slice(0, 3), password: 'wrongpass' }));
  t.is(login.status, 401);
  t.is(login.json.error?.code, 'UNAUTHENTICATED');
});

test('bad input - refused sockets leave no session behind: healthz sessions and connections return to 0', async (t) => {
  const own = await startServer();
  try {
    const u = await newUser(own);
    const health = async (): Promise<{ sessions: number; connections: number }> => (await fetch(`${own.baseUrl}/healthz`)).json() as Promise<{ sessions: number; connections: number }>;
    const closes: Promise<number>[] = [];
    for (let i = 0; i < 10; i++) {
      const ws = new WebSocket(own.wsUrl);
      closes.push(new Promise((resolve) => ws.on('close', (code) => resolve(code))));
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      // Bad tokens, a send before hello, a bad device id, an undecodable frame.
      if (i % 4 === 0) ws.send(encodeClientFrame(1, 'hello', { token: 'nonsense', device_id: 'd', last_inbox_seq: 0 }));
      else if (i % 4 === 1) ws.send(encodeClientFrame(1, 'send', { channel_id: 'x', client_msg_id: 'y', text: 'z' }));
      else if (i % 4 === 2) ws.send(encodeClientFrame(1, 'hello', { token: u.token, device_id: '', last_inbox_seq: 0 }));
      else ws.send(Buffer.from([0xff, 0xff]));
    }
    t.deepEqual([...new Set(await Promise.all(closes))], [1008]);
    // A session that was ready and closed normally ends too.
    const c = await connect(own, u);
    c.client.close();
    t.true(await waitForHealth(health), JSON.stringify(await health()));
  } finally {
    await own.stop();
  }
});

/** Polls /healthz until no session and no connection is left (5 s at most). */
async function waitForHealth(health: () => Promise<{ sessions: number; connections: number }>): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    const h = await health();
    if (h.sessions === 0 && h.connections === 0) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

test('bad input - channel ids that name no channel are refused like a channel one is not in (FORBIDDEN) and leave no channel activation behind', async (t) => {
  const own = await startServer();
  try {
    const u = await newUser(own);
    const c = await connect(own, u);
    for (let i = 0; i < 20; i++) {
      const err = await t.throwsAsync(c.client.history(`g-made-up-${i}`));
      t.is((err as { code?: string }).code, 'FORBIDDEN');
      c.client.markRead(`g-made-up-read-${i}`, 1);
      c.client.typing(`g-made-up-typing-${i}`);
    }
    const httpErr = await t.throwsAsync(u.http.postMessage('g-made-up-http', 'x', 'y'));
    t.is((httpErr as { code?: string }).code, 'FORBIDDEN');
    // Each such activation ends with its answer, rather than idling for actor_idle_ms: a client
    // naming ids at will must not be able to pin memory.
    const channelActors = async (): Promise<number> => Number(/^parley_actors_active\{kind="channel"\} (\d+)$/m.exec(await (await fetch(`${own.baseUrl}/metrics`)).text())?.[1]);
    let left = await channelActors();
    for (let i = 0; i < 20 && left > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await channelActors();
    }
    t.is(left, 0);
    c.client.close();
  } finally {
    await own.stop();
  }
});
