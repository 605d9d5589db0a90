/**
 * Web Push end to end: a browser's subscription registered through the API, a message to its
 * user while no device is online, and a push service written in the test (test/support
 * web-push-receiver.ts) that checks the VAPID header against GET /v1/push/vapid-public-key and
 * decrypts the payload with the subscription's private key and auth secret, as a browser would.
 * It sees the channel, the sender and the unread count; a 410 from it removes the subscription.
 */
import test from 'ava';
import { startWebPushReceiver } from '../support/web-push-receiver.ts';
import { connect, eventually, newUser, startServer } from '../support/server.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('web push - an offline user gets one encrypted, VAPID-signed push per window with channel, sender and unread count; 410 forgets the subscription', async (t) => {
  const receiver = await startWebPushReceiver();
  const server = await startServer({ flags: { 'push-allow-insecure': 'true', 'push-coalesce-ms': '600' } });
  try {
    const [a, b] = [await newUser(server, 'a'), await newUser(server, 'b')];
    const { channel_id } = await a.http.openDm(b.userId);
    const { key } = await b.http.pushPublicKey();
    const sub = receiver.subscription({ applicationServerKey: key });
    await b.http.registerPush('phone', { endpoint: sub.endpoint, keys: sub.keys });

    // Online: nothing is pushed.
    const online = await connect(server, b, 'phone');
    await a.http.postMessage(channel_id, 'm0', 'while online');
    t.true(await eventually(() => online.deliveries.length === 1));
    online.client.markRead(channel_id, 1);
    online.client.close();
    await sleep(1_500);
    t.is(receiver.requests, 0, 'no push while a device was online');

    // Offline (the socket closed, so no device is online): two messages, one push.
    await a.http.postMessage(channel_id, 'm1', 'first');
    await a.http.postMessage(channel_id, 'm2', 'second');
    t.true(await eventually(() => receiver.received.length === 1, 10_000), `rejected: ${JSON.stringify(receiver.rejected)}`);
    await sleep(1_500);
    t.is(receiver.received.length, 1, 'one push for the window');
    const push = receiver.received[0]!;
    t.is(push.vapidKey, key, 'signed with the key the API hands out');
    t.is(push.claims.aud, receiver.origin);
    t.like(push.payload, { type: 'message', channel_id, sender_id: a.userId, unread_count: 2 });
    t.is(typeof push.payload['sender_name'], 'string');
    t.is(typeof push.payload['message_id'], 'string');
    t.false('text' in push.payload, 'no text without --push-include-text');

    // The push service says the subscription is gone: it is removed, and never tried again.
    receiver.setStatus(410);
    const before = receiver.requests;
    await a.http.postMessage(channel_id, 'm3', 'third');
    t.true(await eventually(() => receiver.requests === before + 1, 10_000));
    receiver.setStatus(undefined);
    await sleep(1_000);
    await a.http.postMessage(channel_id, 'm4', 'fourth');
    await sleep(2_500);
    t.is(receiver.requests, before + 1, 'a removed subscription gets nothing more');
  } finally {
    await server.stop();
    await receiver.close();
  }
});
