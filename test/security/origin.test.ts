/**
 * The Origin allowlist (--cors-origins) on a real parleyd (issue 15, security): with a list set,
 * an HTTP call and a WebSocket upgrade from an origin not on it are refused (403 FORBIDDEN "origin
 * not allowed") before they do anything: no login is tried, no user created. Allowed origins, the
 * node's own page, and clients without an Origin (native apps) are served.
 */
import test from 'ava';
import WebSocket from 'ws';
import { newUser, startServer, type ServerHandle, type TestUser } from '../support/server.ts';
import { call, login, metric } from './support.ts';

const ALLOWED = 'http://app.localhost:5173';
const EVIL = 'http://evil.localhost';
let server: ServerHandle;
let user: TestUser;

test.before(async () => {
  server = await startServer({ flags: { 'cors-origins': ALLOWED } });
  user = await newUser(server, 'or');
});

test.after.always(async () => {
  await server?.stop();
});

/** How a WebSocket upgrade with this Origin ends: 'open' or the HTTP status it was refused with. */
function upgrade(origin: string | undefined): Promise<'open' | number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(server.wsUrl, { headers: origin === undefined ? {} : { origin } });
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', () => undefined);
  });
}

test.serial('origin - a call from an origin off the list is refused with 403 before it does anything', async (t) => {
  const read = await call(server, 'GET', '/v1/channels', { token: user.token, headers: { origin: EVIL } });
  t.deepEqual([read.status, read.code, read.message], [403, 'FORBIDDEN', 'origin not allowed']);
  t.is(read.headers.get('access-control-allow-origin'), null);

  // A form-style login (text/plain needs no preflight, so a browser sends it cross-origin): refused unread.
  const hashes = await metric(server, 'parley_password_hashes_total');
  const res = await fetch(`${server.baseUrl}/v1/sessions`, { method: 'POST', headers: { origin: EVIL, 'content-type': 'text/plain' }, body: JSON.stringify({ username: user.username, password: user.password }) });
  t.is(res.status, 403);
  t.is(await metric(server, 'parley_password_hashes_total'), hashes, 'no password was checked');
  const name = `or${process.pid}x`.slice(0, 32);
  t.is((await call(server, 'POST', '/v1/users', { body: { username: name, password: 'password-1' }, headers: { origin: EVIL } })).status, 403);
  t.is((await login(server, name, 'password-1')).status, 401, 'no user was created');
  t.is((await call(server, 'GET', '/v1/channels', { token: user.token, headers: { origin: 'null' } })).status, 403, 'an opaque origin (sandboxed frame, file:) is not on the list either');
  t.is((await call(server, 'POST', '/v1/sessions', { headers: { origin: EVIL, 'access-control-request-method': 'POST' } })).status, 403, 'nor is its preflight answered');
});

test.serial('origin - the allowed origin, the node\'s own page and native clients are served', async (t) => {
  const allowed = await call(server, 'GET', '/v1/channels', { token: user.token, headers: { origin: ALLOWED } });
  t.is(allowed.status, 200);
  t.is(allowed.headers.get('access-control-allow-origin'), ALLOWED);
  t.regex(allowed.headers.get('access-control-expose-headers') ?? '', /Retry-After/, 'a page can read when a 429 lets it retry');
  t.is((await call(server, 'GET', '/v1/channels', { token: user.token, headers: { origin: server.baseUrl } })).status, 200, 'same origin');
  t.is((await call(server, 'GET', '/v1/channels', { token: user.token })).status, 200, 'no Origin');
  t.is((await login(server, user.username, user.password)).status, 200);
});

test.serial('origin - a WebSocket upgrade from an origin off the list is refused (403); allowed, own and none open', async (t) => {
  t.is(await upgrade(EVIL), 403);
  t.is(await upgrade('null'), 403);
  t.is(await upgrade(ALLOWED), 'open');
  t.is(await upgrade(server.baseUrl), 'open');
  t.is(await upgrade(undefined), 'open');
});
