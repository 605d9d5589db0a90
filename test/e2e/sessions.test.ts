/**
 * Login sessions on a real parleyd: refresh (a distinct token of the same login, the old one still
 * valid), logout (every token of the login refused, its sockets closed with 1008, other logins
 * untouched, durable across kill -9), and an SDK client that outlives its token's expiry by
 * refreshing at the shortest lifetime allowed.
 */
import test from 'ava';
import WebSocket from 'ws';
import { ParleyClient, ParleyHttp, type TokenGrant } from '../../client/index.ts';
import { decodeServerFrame, encodeClientFrame, type ServerFrame } from '../../proto/index.ts';
import { connect, eventually, newUser, NodeWebSocket, startServer, type ServerHandle } from '../support/server.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The HTTP status a token gets on an authenticated route. */
async function statusWith(server: ServerHandle, token: string): Promise<number> {
  return (await fetch(`${server.baseUrl}/v1/channels`, { headers: { authorization: `Bearer ${token}` } })).status;
}

async function post(server: ServerHandle, path: string, token: string, method = 'POST'): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(server.baseUrl + path, { method, headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** A raw socket after hello, recording frames and how it closed. */
async function socket(server: ServerHandle, token: string, deviceId: string): Promise<{ ws: WebSocket; frames: ServerFrame[]; closed: Promise<{ code: number; atMs: number }> }> {
  const ws = new WebSocket(server.wsUrl);
  const frames: ServerFrame[] = [];
  ws.on('message', (data: Buffer) => frames.push(decodeServerFrame(new Uint8Array(data))));
  const closed = new Promise<{ code: number; atMs: number }>((resolve) => ws.on('close', (code) => resolve({ code, atMs: Date.now() })));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws.send(encodeClientFrame(1, 'hello', { token, device_id: deviceId, last_inbox_seq: 0 }));
  await eventually(() => frames.length > 0, 5_000);
  return { ws, frames, closed };
}

test('sessions - refresh returns a distinct valid token with a later expires_at_ms; the old one keeps working', async (t) => {
  const server = await startServer();
  try {
    const u = await newUser(server);
    const login = await u.http.login(u.username, u.password);
    t.is(typeof login.expires_at_ms, 'number');
    t.true(Math.abs(login.expires_at_ms - (Date.now() + 86_400_000)) < 10_000, 'the default lifetime is 24 h');
    await sleep(1_100); // expiry has second granularity
    const first = await post(server, '/v1/sessions/refresh', login.token);
    t.is(first.status, 200);
    const refreshed = first.body as unknown as TokenGrant;
    t.not(refreshed.token, login.token);
    t.true(refreshed.expires_at_ms > login.expires_at_ms);
    const again = await post(server, '/v1/sessions/refresh', login.token);
    t.not((again.body as unknown as TokenGrant).token, refreshed.token, 'two refreshes in one second still differ');
    t.is(await statusWith(server, refreshed.token), 200);
    t.is(await statusWith(server, login.token), 200, 'the refreshed-from token stays valid');
    const s = await socket(server, refreshed.token, 'fresh');
    t.is(s.frames[0]?.body, 'welcome');
    s.ws.close();
    t.is((await post(server, '/v1/sessions/refresh', 'v1.bogus.token')).status, 401);
    t.is((await post(server, '/v1/sessions/refresh', '')).status, 401);
  } finally {
    await server.stop();
  }
});

test('sessions - logout: every token of the login gets 401 and its sockets close with 1008 at once; another login of the user keeps working, socket included', async (t) => {
  const server = await startServer();
  try {
    const u = await newUser(server);
    const other = await newUser(server);
    const { channel_id } = await other.http.openDm(u.userId);
    const a = (await u.http.login(u.username, u.password)).token;
    const a2 = ((await post(server, '/v1/sessions/refresh', a)).body as unknown as TokenGrant).token;
    const b = (await new ParleyHttp(server.baseUrl).login(u.username, u.password)).token;
    const onA = await socket(server, a, 'phone');
    const onA2 = await socket(server, a2, 'tablet');
    const onB = await socket(server, b, 'laptop');
    for (const s of [onA, onA2, onB]) t.is(s.frames[0]?.body, 'welcome');

    const loggedOutAt = Date.now();
    const out = await post(server, '/v1/sessions', a2, 'DELETE');
    t.is(out.status, 200);
    for (const token of [a, a2]) {
      const r = await post(server, '/v1/friends', token);
      t.is(r.status, 401);
      t.is((r.body.error as { code: string }).code, 'UNAUTHENTICATED');
      t.is((await post(server, '/v1/sessions/refresh', token)).status, 401, 'a logged-out token cannot be refreshed');
    }
    for (const s of [onA, onA2]) {
      const closed = await Promise.race([s.closed, sleep(5_000).then(() => undefined)]);
      t.is(closed?.code, 1008, 'closed with 1008');
      t.true(closed !== undefined && closed.atMs - loggedOutAt < 5_000, 'within 5 s');
      t.true(s.frames.some((f) => f.body === 'error' && f.error.code === 'UNAUTHENTICATED'));
    }
    const hello = await socket(server, a, 'again');
    t.is(hello.frames[0]?.body === 'error' && hello.frames[0].error.code, 'UNAUTHENTICATED');
    t.is((await hello.closed).code, 1008);
    t.is((await post(server, '/v1/sessions', a, 'DELETE')).status, 401, 'logging out twice is refused');

    // The other login is untouched: HTTP, its open socket, and deliveries on it.
    t.is(await statusWith(server, b), 200);
    await other.http.postMessage(channel_id, 'x1', 'still here?');
    t.true(await eventually(() => onB.frames.some((f) => f.body === 'delivery'), 5_000));
    t.is(onB.ws.readyState, WebSocket.OPEN);
    onB.ws.close();
  } finally {
    await server.stop();
  }
});

test('sessions - a logout survives kill -9: the restarted node refuses the token from its first request', async (t) => {
  const first = await startServer();
  const u = await newUser(first);
  const keep = (await new ParleyHttp(first.baseUrl).login(u.username, u.password)).token;
  t.is((await post(first, '/v1/sessions', u.token, 'DELETE')).status, 200);
  await first.kill();
  const second = await startServer({ dataDir: first.dataDir });
  try {
    t.is(await statusWith(second, u.token), 401);
    const s = await socket(second, u.token, 'd');
    t.is(s.frames[0]?.body === 'error' && s.frames[0].error.code, 'UNAUTHENTICATED');
    t.is(await statusWith(second, keep), 200);
  } finally {
    await second.stop();
  }
});

test('sessions - at the shortest lifetime (token_ttl_s 10) the SDK refreshes and keeps reconnecting past two expiries; without refresh the socket stays up but the reconnect is refused for good', async (t) => {
  const server = await startServer({ flags: { 'token-ttl-s': '10' } });
  try {
    const u = await newUser(server);
    const peer = await newUser(server);
    const { channel_id } = await u.http.openDm(peer.userId);
    const http = new ParleyHttp(server.baseUrl);
    const login = await http.login(u.username, u.password);
    t.true(login.expires_at_ms - Date.now() <= 10_000);
    const client = new ParleyClient({
      servers: [server.wsUrl],
      token: login.token,
      tokenExpiresAtMs: login.expires_at_ms,
      refreshToken: () => http.refresh(),
      deviceId: 'refreshing',
      WebSocket: NodeWebSocket,
      reconnect: true,
    });
    const grants: TokenGrant[] = [];
    client.on('token', (g) => grants.push(g));
    let welcomes = 0;
    client.on('welcome', () => welcomes++);
    await client.connect();
    const plain = await connect(server, { ...u, token: login.token }, 'plain', { reconnect: true });
    const plainDisconnects: { code: number; willReconnect: boolean }[] = [];
    plain.client.on('disconnect', (d) => plainDisconnects.push(d));
    const drop = (c: ParleyClient): void => (c as unknown as { ws: WebSocket }).ws.close(4000, 'test drop');

    // Past the first expiry: both sockets are still up (an expiry closes nothing).
    await sleep(Math.max(0, login.expires_at_ms - Date.now()) + 1_000);
    t.is(grants.length, 1, 'refreshed once, before the expiry');
    t.is(await statusWith(server, login.token), 401, 'the first token has expired');
    t.truthy(client.welcome);
    t.is((await client.send(channel_id, 'on the old socket')).channel_seq, 1);
    t.is(await plain.client.send(channel_id, 'plain, old socket').then((a) => a.channel_seq), 2);

    // Both lose their sockets: the refreshing client comes back with its new token, the other is refused.
    drop(client);
    drop(plain.client);
    t.true(await eventually(() => welcomes === 2, 10_000), 'reconnected with the refreshed token');
    t.true(await eventually(() => plainDisconnects.some((d) => d.code === 1008 && !d.willReconnect), 10_000), JSON.stringify(plainDisconnects));

    // Past the second expiry as well.
    const second = grants[0]!;
    await sleep(Math.max(0, second.expires_at_ms - Date.now()) + 1_000);
    t.true(grants.length >= 2, 'refreshed again');
    drop(client);
    t.true(await eventually(() => welcomes === 3, 10_000));
    t.is((await client.send(channel_id, 'after two expiries')).channel_seq, 3);
    t.is(client.token, grants[grants.length - 1]!.token);
    client.close();
    plain.client.close();
  } finally {
    await server.stop();
  }
});
