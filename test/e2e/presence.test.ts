import test from 'ava';
import WebSocket from 'ws';
import { encodeClientFrame } from '../../proto/index.ts';
import { connect, eventually, newUser, startServer, type ServerHandle, type TestUser } from '../support/server.ts';

const TIMEOUT_MS = 1_500;
let server: ServerHandle;

test.before(async () => {
  // The contract's timings (5 s heartbeat, 30 s silence) scaled down; the mechanism is the same.
  server = await startServer({ flags: { 'presence-timeout-ms': String(TIMEOUT_MS), 'heartbeat-interval-ms': '300' } });
});

test.after.always(async () => {
  await server?.stop();
});

async function befriend(a: TestUser, b: TestUser): Promise<void> {
  const first = await a.http.addFriend(b.userId);
  const second = await b.http.addFriend(a.userId);
  if (first.status !== 'pending' || second.status !== 'friends') throw new Error('friendship did not form');
}

test('presence - friends see online on connect and offline at once on the last clean close; non-friends get no frames', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  const stranger = await newUser(server);
  t.is((await a.http.addFriend(b.userId)).status, 'pending');
  t.is((await b.http.addFriend(a.userId)).status, 'friends');
  const bc = await connect(server, b);
  const sc = await connect(server, stranger);
  const a1 = await connect(server, a, 'a1');
  t.true(await eventually(() => bc.presences.some((p) => p.user_id === a.userId && p.online)));
  const a2 = await connect(server, a, 'a2');
  a1.client.close(); // one device left: still online
  await new Promise((r) => setTimeout(r, 200));
  t.false(bc.presences.some((p) => p.user_id === a.userId && !p.online));
  const closedAt = Date.now();
  a2.client.close();
  t.true(await eventually(() => bc.presences.some((p) => p.user_id === a.userId && !p.online), 1_000));
  t.true(Date.now() - closedAt < 1_000, 'offline arrives at once after a clean close, not after the timeout');
  const off = bc.presences.find((p) => p.user_id === a.userId && !p.online)!;
  t.true(off.last_active_at_ms >= closedAt - 50);
  t.is(sc.presences.length, 0, 'no presence frames to non-friends');
  const friends = await b.http.friends();
  t.deepEqual(friends.friends.map((f) => [f.user_id, f.username, f.online]), [[a.userId, a.username, false]]);
  bc.client.close();
  sc.client.close();
});

test('presence - a silent drop goes offline within the timeout (plus one sweep)', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  await befriend(a, b);
  const bc = await connect(server, b);
  // A raw client that says hello and then never heartbeats: as good as a pulled cable.
  const ws = new WebSocket(server.wsUrl);
  await new Promise((r) => ws.once('open', r));
  ws.send(encodeClientFrame(1, 'hello', { token: a.token, device_id: 'silent', last_inbox_seq: 0 }));
  t.true(await eventually(() => bc.presences.some((p) => p.user_id === a.userId && p.online)));
  const lastHeard = Date.now();
  t.true(await eventually(() => bc.presences.some((p) => p.user_id === a.userId && !p.online), TIMEOUT_MS * 3));
  const took = Date.now() - lastHeard;
  t.true(took >= TIMEOUT_MS - 100, `not before the timeout (${took} ms)`);
  t.true(took <= TIMEOUT_MS + 1_000, `within the timeout plus a sweep (${took} ms)`);
  ws.terminate();
  bc.client.close();
});

test('presence - heartbeats keep a device online past the timeout', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  await befriend(a, b);
  const bc = await connect(server, b);
  const ac = await connect(server, a); // the SDK heartbeats at the welcome's interval
  t.true(await eventually(() => bc.presences.some((p) => p.user_id === a.userId && p.online)));
  await new Promise((r) => setTimeout(r, TIMEOUT_MS * 2));
  t.false(bc.presences.some((p) => p.user_id === a.userId && !p.online));
  const [state] = await bc.client.presence([a.userId]);
  t.true(state!.online);
  ac.client.close();
  bc.client.close();
});

test('presence_query - allowed for friends and channel co-members, FORBIDDEN otherwise; group members get no pushes', async (t) => {
  const me = await newUser(server);
  const friend = await newUser(server);
  const member = await newUser(server);
  const stranger = await newUser(server);
  await befriend(me, friend);
  await member.http.createGroup('g', [me.userId]);
  const mc = await connect(server, me);
  const memberConn = await connect(server, member);
  const sc = await connect(server, stranger);
  const result = await mc.client.presence([friend.userId, member.userId]);
  t.deepEqual(result.map((p) => [p.user_id, p.online]), [
    [friend.userId, false],
    [member.userId, true],
  ]);
  const err = await t.throwsAsync(mc.client.presence([stranger.userId]));
  t.is((err as { code?: string }).code, 'FORBIDDEN');
  // The group member saw me connect? No: groups pull, friends get pushes.
  t.false(memberConn.presences.some((p) => p.user_id === me.userId));
  for (const c of [mc, memberConn, sc]) c.client.close();
});
