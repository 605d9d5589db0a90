/**
 * Blocks on a real parleyd (issue 12): the HTTP contract (idempotent, not yourself, not an
 * unknown user, the list's limit at and past it); a DM closed both ways while a block stands
 * (FORBIDDEN by ref over WebSocket, 403 over HTTP), opening it refused to the blocked one, friend
 * requests and group adds refused, a friendship ended for good; presence hidden both ways at once
 * on live sockets (pushes and pulls); in a shared group nothing the blocked one sends reaches the
 * blocker (inbox, typing, receipts) while the blocker's inbox_seq stays gap-free; all of it kept
 * across a restart.
 */
import test from 'ava';
import { ParleyHttp, type Delivery, type ParleyError, type Presence, type ReadReceipt, type TypingNotice } from '../../client/index.ts';
import { connect, eventually, newUser, startServer, type ServerHandle, type TestUser } from '../support/server.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Presences as plain objects (the SDK's are class instances). */
const plain = (ps: readonly Presence[] | undefined): Presence[] => (ps ?? []).map((p) => ({ ...p }));
const offline = (userId: string): Presence[] => [{ user_id: userId, online: false, last_active_at_ms: 0 }];

async function call(server: ServerHandle, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(server.baseUrl + path, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const codeOf = (r: { body: Record<string, unknown> }): string | undefined => (r.body.error as { code?: string } | undefined)?.code;

async function befriend(a: TestUser, b: TestUser): Promise<void> {
  await a.http.addFriend(b.userId);
  if ((await b.http.addFriend(a.userId)).status !== 'friends') throw new Error('not friends');
}

/** Inbox seqs that do not follow on from the previous one (none in a gap-free inbox). */
function gaps(deliveries: readonly Delivery[], first = 1): number[] {
  return deliveries.filter((d, i) => d.inbox_seq !== first + i).map((d) => d.inbox_seq);
}

test('blocks - the HTTP contract: idempotent, not yourself, not an unknown user', async (t) => {
  const server = await startServer();
  try {
    const [a, b, c] = [await newUser(server), await newUser(server), await newUser(server)];
    t.deepEqual(await a.http.blocks(), { blocked: [] });
    t.is((await call(server, 'POST', '/v1/blocks', a.token, { user_id: b.userId })).status, 200);
    t.is((await call(server, 'POST', '/v1/blocks', a.token, { user_id: b.userId })).status, 200, 'blocking again is harmless');
    await a.http.block(c.userId);
    t.deepEqual((await a.http.blocks()).blocked.sort(), [b.userId, c.userId].sort());
    t.deepEqual(await b.http.blocks(), { blocked: [] }, 'the list is the blocker\'s own');

    const self = await call(server, 'POST', '/v1/blocks', a.token, { user_id: a.userId });
    t.deepEqual([self.status, codeOf(self)], [400, 'INVALID_ARGUMENT']);
    const unknown = await call(server, 'POST', '/v1/blocks', a.token, { user_id: '00000000-0000-0000-0000-000000000000' });
    t.deepEqual([unknown.status, codeOf(unknown)], [404, 'NOT_FOUND']);
    t.is((await call(server, 'POST', '/v1/blocks', a.token, {})).status, 400, 'user_id is required');
    t.is((await call(server, 'POST', '/v1/blocks', undefined, { user_id: b.userId })).status, 401);
    t.is((await call(server, 'GET', '/v1/blocks')).status, 401);
    t.is((await call(server, 'DELETE', `/v1/blocks/${a.userId}`, a.token)).status, 400);
    t.is((await call(server, 'DELETE', '/v1/blocks/00000000-0000-0000-0000-000000000000', a.token)).status, 404);

    t.is((await call(server, 'DELETE', `/v1/blocks/${b.userId}`, a.token)).status, 200);
    t.is((await call(server, 'DELETE', `/v1/blocks/${b.userId}`, a.token)).status, 200, 'unblocking again is harmless');
    await a.http.unblock(c.userId);
    t.deepEqual(await a.http.blocks(), { blocked: [] });
  } finally {
    await server.stop();
  }
});

test('blocks - a DM is closed both ways at once on live sockets; friendship ended for good; presence hidden both ways', async (t) => {
  const server = await startServer();
  try {
    const [a, b] = [await newUser(server), await newUser(server)];
    await befriend(a, b);
    const { channel_id: dm } = await a.http.openDm(b.userId);
    const da = await connect(server, a, 'a1');
    const db = await connect(server, b, 'b1');
    t.true((await db.client.presence([a.userId]))[0]!.online, 'friends see each other online');
    t.true((await da.client.presence([b.userId]))[0]!.online);
    await db.client.send(dm, 'before');
    t.true(await eventually(() => da.deliveries.length === 1));

    await a.http.block(b.userId);
    // At once, on the sockets already open: the next send of each side is refused by its ref.
    const bSend = await db.client.send(dm, 'while blocked').then(
      () => 'sent',
      (e: ParleyError) => e.code,
    );
    t.is(bSend, 'FORBIDDEN', 'the blocked one cannot send in the DM');
    const aSend = await da.client.send(dm, 'to someone I block').then(
      () => 'sent',
      (e: ParleyError) => e.code,
    );
    t.is(aSend, 'FORBIDDEN', 'the blocker cannot either: unblock to send');
    const httpSend = await call(server, 'POST', `/v1/channels/${dm}/messages`, b.token, { client_msg_id: 'x1', text: 'over http' });
    t.deepEqual([httpSend.status, codeOf(httpSend)], [403, 'FORBIDDEN']);

    // Presence: each side's devices were told the other is offline, and pulls say so too.
    const last = (ps: Presence[], id: string): Presence | undefined => ps.filter((p) => p.user_id === id).at(-1);
    t.true(await eventually(() => last(db.presences, a.userId)?.online === false && last(da.presences, b.userId)?.online === false));
    t.deepEqual(plain([last(db.presences, a.userId)!]), offline(a.userId), 'offline, never seen');
    t.deepEqual(plain(await db.client.presence([a.userId])), offline(a.userId), 'a pull (DM co-members) shows offline');
    t.deepEqual(plain(await da.client.presence([b.userId])), offline(b.userId));
    // a reconnecting is no news to b.
    const pushesToB = db.presences.length;
    da.client.close();
    const da2 = await connect(server, a, 'a2');
    await sleep(300);
    t.is(db.presences.length, pushesToB, 'no presence of a reaches b');

    // The friendship is over both ways, and neither can start a new one.
    t.deepEqual((await a.http.friends()).friends, []);
    t.deepEqual((await b.http.friends()).friends, []);
    const bAsks = await call(server, 'POST', '/v1/friends', b.token, { user_id: a.userId });
    t.deepEqual([bAsks.status, codeOf(bAsks)], [403, 'FORBIDDEN']);
    const aAsks = await call(server, 'POST', '/v1/friends', a.token, { user_id: b.userId });
    t.deepEqual([aAsks.status, codeOf(aAsks)], [403, 'FORBIDDEN'], 'the blocker unblocks first');

    // Opening the DM: refused to the blocked one; the blocker may (to read it).
    const bOpens = await call(server, 'POST', '/v1/dms', b.token, { user_id: a.userId });
    t.deepEqual([bOpens.status, codeOf(bOpens)], [403, 'FORBIDDEN']);
    t.deepEqual(await a.http.openDm(b.userId), { channel_id: dm });
    t.deepEqual((await a.http.history(dm)).messages.map((m) => m.text), ['before']);

    // Unblocked: the DM works again at once; the friendship does not come back.
    await a.http.unblock(b.userId);
    const ack = await db.client.send(dm, 'after');
    t.is(ack.channel_seq, 2, 'refused sends took no seq');
    t.true(await eventually(() => da2.deliveries.some((d) => d.message.text === 'after')));
    t.deepEqual(await b.http.openDm(a.userId), { channel_id: dm });
    t.deepEqual((await a.http.friends()).friends, []);
    t.is((await b.http.addFriend(a.userId)).status, 'pending', 'a new request starts over');
    for (const d of [da2, db]) d.client.close();
  } finally {
    await server.stop();
  }
});

test('blocks - a DM not opened yet: the blocked one cannot open it', async (t) => {
  const server = await startServer();
  try {
    const [a, b] = [await newUser(server), await newUser(server)];
    await a.http.block(b.userId);
    const r = await call(server, 'POST', '/v1/dms', b.token, { user_id: a.userId });
    t.deepEqual([r.status, codeOf(r)], [403, 'FORBIDDEN']);
    const { channel_id: dm } = await a.http.openDm(b.userId);
    const send = await call(server, 'POST', `/v1/channels/${dm}/messages`, a.token, { client_msg_id: 'm1', text: 'hi' });
    t.deepEqual([send.status, codeOf(send)], [403, 'FORBIDDEN'], 'created by the blocker, still closed');
    await a.http.unblock(b.userId);
    t.deepEqual(await b.http.openDm(a.userId), { channel_id: dm });
    t.is((await b.http.postMessage(dm, 'm1', 'hello')).channel_seq, 1);
  } finally {
    await server.stop();
  }
});

test('blocks - in a shared group nothing of the blocked one reaches the blocker; gap-free inbox; no adds; kept across a restart', async (t) => {
  let server = await startServer();
  const dataDir = server.dataDir;
  try {
    const [a, b, c] = [await newUser(server), await newUser(server), await newUser(server)];
    const { channel_id: group } = await c.http.createGroup('shared', [a.userId, b.userId]);
    const da = await connect(server, a, 'a1');
    const db = await connect(server, b, 'b1');
    const dc = await connect(server, c, 'c1');
    const typing = new Map<string, TypingNotice[]>();
    const receipts = new Map<string, ReadReceipt[]>();
    for (const [u, d] of [[a, da], [b, db], [c, dc]] as const) {
      typing.set(u.userId, []);
      receipts.set(u.userId, []);
      d.client.on('typing', (n) => typing.get(u.userId)!.push({ ...n }));
      d.client.on('readReceipt', (r) => receipts.get(u.userId)!.push({ ...r }));
    }

    await db.client.send(group, 'b before');
    await dc.client.send(group, 'c 1');
    t.true(await eventually(() => da.deliveries.length === 2));
    await a.http.block(b.userId);

    // Interleaved: b's messages around and between c's, one at a time and pipelined.
    await db.client.send(group, 'b 1');
    await dc.client.send(group, 'c 2');
    await Promise.all([db.client.send(group, 'b 2'), db.client.send(group, 'b 3')]);
    await dc.client.send(group, 'c 3');
    await db.client.send(group, 'b 4');
    await dc.client.send(group, 'c 4');
    t.true(await eventually(() => dc.deliveries.length === 9 && db.deliveries.length === 9));
    t.true(await eventually(() => da.deliveries.length === 5));
    await sleep(300);
    const texts = (ds: readonly Delivery[]): string[] => ds.map((d) => d.message.text);
    t.deepEqual(texts(da.deliveries), ['b before', 'c 1', 'c 2', 'c 3', 'c 4'], 'b\'s messages before the block stay; none after');
    t.deepEqual(gaps(da.deliveries), [], 'inbox_seq 1..5, no gap');
    t.deepEqual(texts(db.deliveries).filter((x) => x.startsWith('c')), ['c 1', 'c 2', 'c 3', 'c 4'], 'b still gets the others\' messages');
    const synced = await da.client.sync(0, 100);
    t.deepEqual(texts(synced.deliveries), texts(da.deliveries), 'sync reads the same inbox');

    // Typing and read receipts of b do not reach a (c still gets them).
    db.client.typing(group);
    db.client.markRead(group, 4);
    t.true(await eventually(() => typing.get(c.userId)!.length === 1 && receipts.get(c.userId)!.length === 1));
    await sleep(300);
    t.deepEqual([typing.get(a.userId)!.length, receipts.get(a.userId)!.length], [0, 0]);
    // Nor do a's reach b: a is offline to b, and typing or reading would say otherwise.
    da.client.typing(group);
    da.client.markRead(group, 3);
    t.true(await eventually(() => typing.get(c.userId)!.length === 2 && receipts.get(c.userId)!.length === 2));
    await sleep(300);
    t.deepEqual([typing.get(b.userId)!.length, receipts.get(b.userId)!.filter((r) => r.user_id === a.userId).length], [0, 0]);

    // Presence pulls among co-members: hidden both ways, others unaffected.
    t.deepEqual(plain(await db.client.presence([a.userId])), offline(a.userId));
    t.true((await dc.client.presence([a.userId]))[0]!.online, 'c sees a online');
    t.false((await da.client.presence([b.userId]))[0]!.online);

    // b cannot add a to a group, at creation or later; a cannot add b either.
    const create = await call(server, 'POST', '/v1/channels', b.token, { name: 'with a', member_ids: [a.userId, c.userId] });
    t.deepEqual([create.status, codeOf(create)], [403, 'FORBIDDEN']);
    const { channel_id: bGroup } = await b.http.createGroup('b and c', [c.userId]);
    const add = await call(server, 'POST', `/v1/channels/${bGroup}/members`, b.token, { user_id: a.userId });
    t.deepEqual([add.status, codeOf(add)], [403, 'FORBIDDEN']);
    const { channel_id: aGroup } = await a.http.createGroup('a and c', [c.userId]);
    const aAdds = await call(server, 'POST', `/v1/channels/${aGroup}/members`, a.token, { user_id: b.userId });
    t.deepEqual([aAdds.status, codeOf(aAdds)], [403, 'FORBIDDEN']);
    const cAdds = await call(server, 'POST', `/v1/channels/${aGroup}/members`, c.token, { user_id: b.userId });
    t.is(cAdds.status, 200, 'someone else may put them in one group');
    const aSeen = da.deliveries.length;
    for (const d of [da, db, dc]) d.client.close();

    // Kept across a restart: a's user actor starts over from the store, with b's message the
    // first thing that arrives in the channel a's inbox was taking last.
    await server.stop();
    server = await startServer({ dataDir });
    const [aHttp, bHttp, cHttp] = [a, b, c].map((u) => new ParleyHttp(server.baseUrl, u.token)) as [ParleyHttp, ParleyHttp, ParleyHttp];
    t.deepEqual(await aHttp.blocks(), { blocked: [b.userId] });
    await bHttp.postMessage(group, 'r1', 'b after restart');
    await cHttp.postMessage(group, 'r2', 'c after restart');
    await bHttp.postMessage(group, 'r3', 'b again');
    const bOpens = await call(server, 'POST', '/v1/dms', b.token, { user_id: a.userId });
    t.is(bOpens.status, 403);
    const ra = await connect(server, { ...a, http: aHttp }, 'a1', { lastInboxSeq: aSeen });
    const all = await ra.client.sync(0, 100);
    t.deepEqual(texts(all.deliveries), ['b before', 'c 1', 'c 2', 'c 3', 'c 4', 'c after restart']);
    t.deepEqual(gaps(all.deliveries), []);
    t.true(await eventually(() => ra.deliveries.length === 1));
    t.deepEqual(texts(ra.deliveries), ['c after restart']);
    ra.client.close();
  } finally {
    await server.stop();
  }
});

test('blocks - at most 1,000: the 1,000th is taken, the 1,001st refused with BLOCK_LIST_FULL', async (t) => {
  t.timeout(180_000);
  const server = await startServer({ flags: { 'auth-per-minute': '100000' } });
  try {
    const a = await newUser(server);
    // Plain signups (no login needed): the ones a blocks.
    const ids: string[] = [];
    const signupOne = async (i: number): Promise<void> => {
      const r = await call(server, 'POST', '/v1/users', undefined, { username: `blk${process.pid}_${i}`, password: 'password-1' });
      ids[i] = r.body.user_id as string;
    };
    const inParallel = async (n: number, work: (i: number) => Promise<void>): Promise<void> => {
      let next = 0;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (next < n) await work(next++);
      }));
    };
    await inParallel(1_001, signupOne);
    await inParallel(1_000, async (i) => {
      const r = await call(server, 'POST', '/v1/blocks', a.token, { user_id: ids[i] });
      if (r.status !== 200) throw new Error(`block ${i}: ${JSON.stringify(r)}`);
    });
    t.is((await a.http.blocks()).blocked.length, 1_000, 'at the limit');
    const past = await call(server, 'POST', '/v1/blocks', a.token, { user_id: ids[1_000] });
    t.deepEqual([past.status, codeOf(past)], [422, 'BLOCK_LIST_FULL']);
    t.is((await call(server, 'POST', '/v1/blocks', a.token, { user_id: ids[0] })).status, 200, 'repeating one at the limit is still harmless');
    t.is((await a.http.blocks()).blocked.length, 1_000);
    await a.http.unblock(ids[0]!);
    t.is((await call(server, 'POST', '/v1/blocks', a.token, { user_id: ids[1_000] })).status, 200, 'room again after an unblock');
    t.false((await a.http.blocks()).blocked.includes(ids[0]!));
  } finally {
    await server.stop();
  }
});
