/**
 * Typing notices on a real parleyd: other members' devices get them, the typist's own devices do
 * not; a typist sending a frame every 100 ms yields one notice a second (no more, no fewer);
 * nothing is stored; a non-member is refused with FORBIDDEN by the frame's ref.
 */
import test from 'ava';
import type { TypingNotice } from '../../client/index.ts';
import { connect, eventually, newUser, startServer } from '../support/server.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('typing - one notice a second to the other members while typing, none to the typist or outsiders', async (t) => {
  const server = await startServer();
  try {
    const [a, b, c, outsider] = [await newUser(server), await newUser(server), await newUser(server), await newUser(server)];
    const { channel_id: group } = await a.http.createGroup('g', [b.userId, c.userId]);
    const seen = new Map<string, TypingNotice[]>();
    const watch = async (user: typeof a, device: string): Promise<Awaited<ReturnType<typeof connect>>> => {
      const conn = await connect(server, user, device);
      const list: TypingNotice[] = [];
      seen.set(`${user.userId}/${device}`, list);
      conn.client.on('typing', (n) => list.push(n));
      return conn;
    };
    const typist = await watch(a, 'phone');
    const typistOther = await watch(a, 'laptop');
    const bConn = await watch(b, 'd1');
    const cConn = await watch(c, 'd1');
    const out = await watch(outsider, 'd1');

    // Typing for 2.5 s, a frame every 100 ms: notices at 0, 1 and 2 s, and at 3 s for the frames
    // after 2 s (the end of that window); none after. Far from a window's edge, so not flaky.
    const started = Date.now();
    while (Date.now() - started < 2_500) {
      typist.client.typing(group);
      await sleep(100);
    }
    await sleep(1_500); // the notice due at 3 s has gone out, and no other
    for (const who of [`${b.userId}/d1`, `${c.userId}/d1`]) {
      const list = seen.get(who)!;
      t.is(list.length, 4, `${who}: ${list.length} notices`);
      t.true(list.every((n) => n.channel_id === group && n.user_id === a.userId && n.expires_in_ms === 3_000));
    }
    t.is(seen.get(`${a.userId}/phone`)!.length, 0, 'not to the typist');
    t.is(seen.get(`${a.userId}/laptop`)!.length, 0, "not to the typist's other devices");
    t.is(seen.get(`${outsider.userId}/d1`)!.length, 0, 'not to non-members');

    // A non-member typing is refused by the frame's ref and reaches nobody.
    const errors: string[] = [];
    out.client.on('error', (e) => errors.push(e.code));
    out.client.typing(group);
    t.true(await eventually(() => errors.length > 0, 5_000));
    t.deepEqual(errors, ['FORBIDDEN']);
    await sleep(300);
    t.is(seen.get(`${b.userId}/d1`)!.length, 4);

    // Never stored: nothing in the inbox or the history.
    t.is(bConn.deliveries.length, 0);
    t.is((await b.http.history(group)).messages.length, 0);
    for (const conn of [typist, typistOther, bConn, cConn, out]) conn.client.close();
  } finally {
    await server.stop();
  }
});
