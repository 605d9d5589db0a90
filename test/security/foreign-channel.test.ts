/**
 * Someone else's channel on a real parleyd (issue 15, security): a user who is not a member of a
 * DM or a group cannot send to it, read its history, its read marks, mute it, add members to it
 * (themselves or anyone) or remove its members, over HTTP (403 FORBIDDEN) or the WebSocket
 * (FORBIDDEN by the frame's ref); a channel id that does not exist answers the same, so the
 * answer tells nothing about which channels exist. Nothing is written: the history, the members
 * and the members' deliveries are what they were.
 */
import test from 'ava';
import { ParleyError, type Delivery } from '../../client/index.ts';
import { connect, eventually, newUser, startServer, type ServerHandle, type TestUser } from '../support/server.ts';
import { call } from './support.ts';

let server: ServerHandle;
let a: TestUser;
let b: TestUser;
let outsider: TestUser;
let dm: string;
let group: string;

test.before(async () => {
  server = await startServer();
  [a, b, outsider] = [await newUser(server, 'fa'), await newUser(server, 'fb'), await newUser(server, 'fc')];
  dm = (await a.http.openDm(b.userId)).channel_id;
  group = (await a.http.createGroup('members only', [b.userId])).channel_id;
  await a.http.postMessage(dm, 'm-dm', 'private');
  await a.http.postMessage(group, 'm-g', 'members only');
});

test.after.always(async () => {
  await server?.stop();
});

const NO_SUCH = 'g-00000000-0000-4000-8000-000000000000';

test.serial('foreign channel - HTTP: sends, history, read marks, mute, member adds and removals are refused with 403', async (t) => {
  const tok = { token: outsider.token };
  for (const [name, id] of [['dm', dm], ['group', group], ['no such channel', NO_SUCH]] as const) {
    const attempts = {
      send: await call(server, 'POST', `/v1/channels/${id}/messages`, { ...tok, body: { client_msg_id: `x-${name}`, text: 'let me in' } }),
      history: await call(server, 'GET', `/v1/channels/${id}/messages`, tok),
      reads: await call(server, 'GET', `/v1/channels/${id}/reads`, tok),
      mute: await call(server, 'PUT', `/v1/channels/${id}/mute`, { ...tok, body: { until_ms: Date.now() + 60_000 } }),
      'add self': await call(server, 'POST', `/v1/channels/${id}/members`, { ...tok, body: { user_id: outsider.userId } }),
      'add another': await call(server, 'POST', `/v1/channels/${id}/members`, { ...tok, body: { user_id: a.userId } }),
      'remove a member': await call(server, 'DELETE', `/v1/channels/${id}/members/${b.userId}`, tok),
    };
    for (const [what, answer] of Object.entries(attempts)) t.deepEqual([answer.status, answer.code], [403, 'FORBIDDEN'], `${name}: ${what} (${answer.message})`);
  }
});

test.serial('foreign channel - WebSocket: a send and a history request are refused FORBIDDEN by their ref; nothing reaches the members', async (t) => {
  const member = await connect(server, b, 'watch');
  const intruder = await connect(server, outsider, 'd1');
  try {
    for (const id of [dm, group, NO_SUCH]) {
      const sent = await intruder.client.send(id, 'let me in').then(() => 'acked', (e: unknown) => (e instanceof ParleyError ? e.code : String(e)));
      t.is(sent, 'FORBIDDEN', `send to ${id}`);
      const read = await intruder.client.history(id).then(() => 'read', (e: unknown) => (e instanceof ParleyError ? e.code : String(e)));
      t.is(read, 'FORBIDDEN', `history of ${id}`);
    }
    // Give any stray delivery time to arrive: there must be none from the outsider.
    const fromOutsider = (d: Delivery) => d.message.sender_id === outsider.userId;
    t.false(await eventually(() => member.deliveries.some(fromOutsider), 500), 'no member got anything from the outsider');
  } finally {
    member.client.close();
    intruder.client.close();
  }
});

test.serial('foreign channel - after all that the channels are as they were', async (t) => {
  const dmHistory = await a.http.history(dm);
  t.deepEqual(dmHistory.messages.map((m) => m.text), ['private']);
  const groupHistory = await a.http.history(group);
  t.deepEqual(groupHistory.messages.map((m) => m.text), ['members only']);
  const mine = (await a.http.channels()).channels;
  t.deepEqual(mine.find((c) => c.channel_id === group)?.member_ids.sort(), [a.userId, b.userId].sort());
  t.deepEqual(mine.find((c) => c.channel_id === dm)?.member_ids.sort(), [a.userId, b.userId].sort());
  t.deepEqual((await outsider.http.channels()).channels, [], 'the outsider is in no channel');
  t.is(mine.find((c) => c.channel_id === dm)?.last_seq, 1, 'no message was added');
});
