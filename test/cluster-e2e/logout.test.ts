/**
 * Logout holds on every node of a cluster: two nodes on a real etcd and one shared store. A logout
 * on n1 is refused on n2 within about a second and closes n2's socket of that login with 1008
 * within 5 s; another login of the user keeps its socket and its HTTP access; a node that joins
 * after the logout refuses the token from its first request.
 */
import test from 'ava';
import WebSocket from 'ws';
import { ParleyHttp } from '../../client/index.ts';
import { startCluster, type ClusterNode, type TestCluster } from '../support/cluster.ts';
import { newUser } from '../support/server.ts';
import { dumpLogs, RawSession, sleep, waitForView } from './support.ts';

let cluster: TestCluster;

test.before(async () => {
  cluster = await startCluster(2);
  await waitForView(cluster.nodes, ['n1', 'n2']);
});

test.after.always(async () => {
  dumpLogs(cluster, 'logout');
  await cluster?.stop();
});

const status = async (node: ClusterNode, token: string): Promise<number> =>
  (await fetch(`${node.baseUrl}/v1/channels`, { headers: { authorization: `Bearer ${token}` } })).status;

/** How a raw session's socket closed, once it has (`undefined` while open). */
function closeOf(s: RawSession): Promise<{ code: number; atMs: number }> {
  const ws = (s as unknown as { ws: WebSocket }).ws;
  return new Promise((resolve) => ws.once('close', (code) => resolve({ code, atMs: Date.now() })));
}

test('logout on one node: refused on the other within 2 s, its socket there closed with 1008 within 5 s; another login untouched; a node joining later refuses it too', async (t) => {
  const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  const u = await newUser(n1, 'lo');
  const other = (await new ParleyHttp(n2.baseUrl).login(u.username, u.password)).token;
  const onN2 = await RawSession.open(n2.wsUrl, u, 'phone');
  const otherOnN2 = await RawSession.open(n2.wsUrl, { ...u, token: other }, 'laptop');
  const closed = closeOf(onN2);
  const otherClosed = closeOf(otherOnN2);
  t.is(await status(n2, u.token), 200);

  const loggedOutAt = Date.now();
  const res = await fetch(`${n1.baseUrl}/v1/sessions`, { method: 'DELETE', headers: { authorization: `Bearer ${u.token}` } });
  t.is(res.status, 200);
  t.is(await status(n1, u.token), 401, 'refused at once on the node that logged out');

  let refusedAfterMs: number | undefined;
  for (let i = 0; i < 100 && refusedAfterMs === undefined; i++) {
    if ((await status(n2, u.token)) === 401) refusedAfterMs = Date.now() - loggedOutAt;
    else await sleep(50);
  }
  t.log('refused on n2 after', refusedAfterMs, 'ms');
  t.true(refusedAfterMs !== undefined && refusedAfterMs <= 2_000, `refused on n2 after ${refusedAfterMs} ms`);

  const c = await Promise.race([closed, sleep(5_000).then(() => undefined)]);
  t.log('socket on n2 closed after', c && c.atMs - loggedOutAt, 'ms');
  t.is(c?.code, 1008);
  t.true(c !== undefined && c.atMs - loggedOutAt <= 5_000);
  // RawSession keeps frames as copies, without the decoder's `body` getter: look at the field.
  t.true(onN2.frames.some((f) => (f as { error?: { code: string } }).error?.code === 'UNAUTHENTICATED'), JSON.stringify(onN2.frames));
  await t.throwsAsync(RawSession.open(n2.wsUrl, u, 'again'), { message: /UNAUTHENTICATED/ });

  // The other login: its socket stays open and answers, its token works on both nodes.
  t.is(await Promise.race([otherClosed.then(() => 'closed'), sleep(1_000).then(() => 'open')]), 'open');
  const answer = await otherOnN2.request('presence_query', { user_ids: [u.userId] }, 5_000);
  t.is(answer.body, 'presence_result');
  t.is(await status(n1, other), 200);
  t.is(await status(n2, other), 200);

  // A node that starts after the logout loads it before it serves.
  const n3 = await cluster.addNode();
  t.is(await status(n3, u.token), 401);
  t.is(await status(n3, other), 200);
  otherOnN2.close();
});
