/**
 * The directory, display names, unfriend and CORS on a real parleyd (issue 12's HTTP contract):
 * find a user by username, read a profile by id, set a display name at the limit and past it,
 * unfriend from either side, and browser origins allowed or not (preflight, response headers,
 * WebSocket upgrades with and without an Origin).
 */
import test from 'ava';
import WebSocket from 'ws';
import { newUser, startServer, type ServerHandle, type TestUser } from '../support/server.ts';

async function call(server: ServerHandle, method: string, path: string, token?: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(server.baseUrl + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers };
}

/** How a WebSocket upgrade with these headers ends: 'open' or the HTTP status it was refused with. */
function upgrade(server: ServerHandle, headers: Record<string, string>): Promise<'open' | number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(server.wsUrl, { headers });
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', () => undefined);
  });
}

async function befriend(server: ServerHandle, a: TestUser, b: TestUser): Promise<void> {
  await call(server, 'POST', '/v1/friends', a.token, { user_id: b.userId });
  const r = await call(server, 'POST', '/v1/friends', b.token, { user_id: a.userId });
  if (r.body.status !== 'friends') throw new Error(`not friends: ${JSON.stringify(r.body)}`);
}

test('directory - find by username, read by id, display names at 64 code points and past it', async (t) => {
  const server = await startServer();
  try {
    const [a, b] = [await newUser(server), await newUser(server)];
    const found = await call(server, 'GET', `/v1/users?username=${encodeURIComponent(b.username)}`, a.token);
    t.is(found.status, 200);
    t.deepEqual(found.body, { user_id: b.userId, username: b.username, display_name: b.username });
    t.is((await call(server, 'GET', '/v1/users?username=nobody_here_at_all', a.token)).status, 404);
    t.is((await call(server, 'GET', '/v1/users?username=nobody_here_at_all', a.token)).body.error !== undefined, true);
    t.is((await call(server, 'GET', `/v1/users?username=${b.username}`)).status, 401, 'a bearer token is required');
    t.is((await call(server, 'GET', '/v1/users', a.token)).status, 400, 'username is required');
    t.deepEqual((await call(server, 'GET', `/v1/users/${b.userId}`, a.token)).body, found.body);
    t.deepEqual(await a.http.findUser(b.username), found.body, 'the SDK finds the same');
    t.deepEqual(await a.http.user(b.userId), found.body);
    await t.throwsAsync(a.http.findUser('nobody_here_at_all'), { message: /no such user/ });
    t.is((await call(server, 'GET', '/v1/users/00000000-0000-0000-0000-000000000000', a.token)).status, 404);

    const atLimit = '😀'.repeat(63) + 'é'; // 64 code points, 254 bytes
    const set = await call(server, 'PATCH', '/v1/users/me', b.token, { display_name: atLimit });
    t.is(set.status, 200);
    t.deepEqual(set.body, { user_id: b.userId, username: b.username, display_name: atLimit });
    t.is((await call(server, 'GET', `/v1/users/${b.userId}`, a.token)).body.display_name, atLimit, 'others see it');
    t.is((await call(server, 'GET', '/v1/users/me', b.token)).body.display_name, atLimit);
    for (const bad of ['😀'.repeat(65), '', '   ', 'tab\there', 42]) {
      const r = await call(server, 'PATCH', '/v1/users/me', b.token, { display_name: bad });
      t.is(r.status, 400, `display_name ${JSON.stringify(bad)}`);
      t.is((r.body.error as { code: string }).code, 'INVALID_ARGUMENT');
    }
    t.is((await call(server, 'GET', `/v1/users/${b.userId}`, a.token)).body.display_name, atLimit, 'a refused change changes nothing');

    await befriend(server, a, b);
    const friends = (await call(server, 'GET', '/v1/friends', a.token)).body.friends as { user_id: string; display_name: string }[];
    t.deepEqual(friends.map((f) => [f.user_id, f.display_name]), [[b.userId, atLimit]]);
  } finally {
    await server.stop();
  }
});

test('unfriend - either side ends it for both; a new request starts over as pending', async (t) => {
  const server = await startServer();
  try {
    const [a, b] = [await newUser(server), await newUser(server)];
    await befriend(server, a, b);
    await b.http.unfriend(a.userId);
    t.deepEqual((await call(server, 'GET', '/v1/friends', a.token)).body.friends, []);
    t.deepEqual((await call(server, 'GET', '/v1/friends', b.token)).body.friends, []);
    t.is((await call(server, 'DELETE', `/v1/friends/${a.userId}`, b.token)).status, 200, 'unfriending again is harmless');
    t.is((await call(server, 'DELETE', `/v1/friends/${b.userId}`, b.token)).status, 400, 'not yourself');
    const again = await call(server, 'POST', '/v1/friends', a.token, { user_id: b.userId });
    t.is(again.body.status, 'pending', 'the old acceptance does not come back');
  } finally {
    await server.stop();
  }
});

test('cors - an allowed origin gets preflights and headers, another gets none; upgrades from other origins are refused', async (t) => {
  const allowed = 'http://app.localhost:5173';
  const server = await startServer({ flags: { 'cors-origins': `${allowed},https://other.example` } });
  try {
    const u = await newUser(server);
    const pre = await call(server, 'OPTIONS', '/v1/channels', undefined, undefined, { origin: allowed, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' });
    t.is(pre.status, 204);
    t.is(pre.headers.get('access-control-allow-origin'), allowed);
    t.regex(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
    t.regex(pre.headers.get('access-control-allow-headers') ?? '', /authorization/);
    t.regex(pre.headers.get('access-control-allow-headers') ?? '', /content-type/);
    const get = await call(server, 'GET', '/v1/channels', u.token, undefined, { origin: allowed });
    t.is(get.status, 200);
    t.is(get.headers.get('access-control-allow-origin'), allowed);
    const err = await call(server, 'GET', '/v1/channels', undefined, undefined, { origin: allowed });
    t.is(err.status, 401);
    t.is(err.headers.get('access-control-allow-origin'), allowed, 'errors carry it too, so the app can read them');

    const evil = 'http://evil.localhost';
    const prEvil = await call(server, 'OPTIONS', '/v1/channels', undefined, undefined, { origin: evil, 'access-control-request-method': 'POST' });
    t.not(prEvil.status, 204);
    t.is(prEvil.headers.get('access-control-allow-origin'), null);
    const getEvil = await call(server, 'GET', '/v1/channels', u.token, undefined, { origin: evil });
    t.is(getEvil.headers.get('access-control-allow-origin'), null);
    t.is((await call(server, 'OPTIONS', '/v1/channels')).status, 405, 'an OPTIONS without an Origin is no preflight');

    t.is(await upgrade(server, { origin: allowed }), 'open');
    t.is(await upgrade(server, {}), 'open', 'native apps send no Origin');
    t.is(await upgrade(server, { origin: evil }), 403);
    t.is(await upgrade(server, { origin: server.baseUrl }), 'open', "the node's own page (its origin is the Host) is not cross-origin");
  } finally {
    await server.stop();
  }
});

test('cors - unset: no CORS headers, any upgrade; `*` allows every origin; a malformed list fails at start', async (t) => {
  const plain = await startServer();
  try {
    const pre = await call(plain, 'OPTIONS', '/v1/channels', undefined, undefined, { origin: 'http://a.localhost', 'access-control-request-method': 'GET' });
    t.is(pre.headers.get('access-control-allow-origin'), null);
    t.is(await upgrade(plain, { origin: 'http://a.localhost' }), 'open');
  } finally {
    await plain.stop();
  }
  const star = await startServer({ flags: { 'cors-origins': '*' } });
  try {
    const pre = await call(star, 'OPTIONS', '/v1/channels', undefined, undefined, { origin: 'http://b.localhost', 'access-control-request-method': 'GET' });
    t.is(pre.status, 204);
    t.is(pre.headers.get('access-control-allow-origin'), '*');
    t.is(await upgrade(star, { origin: 'http://b.localhost' }), 'open');
  } finally {
    await star.stop();
  }
  const err = await startServer({ flags: { 'cors-origins': 'https://ok.example,https://bad.example/path' } }).then(
    async (s) => {
      await s.stop();
      return undefined;
    },
    (e: unknown) => String(e),
  );
  t.regex(err ?? 'started', /cors_origins: "https:\/\/bad\.example\/path" is not an origin/);
});
