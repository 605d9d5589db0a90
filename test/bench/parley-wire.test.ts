import test from 'ava';
import { decodeClientFrame, encodeClientFrame, encodeServerFrame } from '../../proto/client-codec.ts';
import { ChatterEncoder, encodeAck, HEARTBEAT_FRAME, newScan, scanServerFrame, SendEncoder, ServerBody } from '../../bench/lib/parley-wire.ts';

test('send frames are byte-for-byte what the real codec produces', (t) => {
  for (const [channel, text] of [
    ['dm-0f6c1a2e-93b4-4bd5-8c4e-1b2f3a4d5e6f', 'x'.repeat(64)],
    ['g', 'é'.repeat(300)],
    ['c'.repeat(128), 'x'],
  ] as const) {
    const enc = new SendEncoder(channel, text);
    for (const id of [1, 9, 10, 127, 128, 300, 16_383, 16_384, 2 ** 31 + 5, 2 ** 40 + 17, Number.MAX_SAFE_INTEGER]) {
      const ours = enc.encode(id);
      const theirs = encodeClientFrame(id, 'send', { channel_id: channel, client_msg_id: String(id), text });
      t.true(Buffer.from(ours).equals(Buffer.from(theirs)), `channel ${channel.length} chars, id ${id}`);
      const back = decodeClientFrame(ours);
      t.is(back.body, 'send');
    }
  }
});

test('heartbeat and ack frames match the real codec', (t) => {
  t.true(Buffer.from(HEARTBEAT_FRAME).equals(Buffer.from(encodeClientFrame(0, 'heartbeat', {}))));
  for (const seq of [0, 1, 127, 128, 1_000_000, 2 ** 35]) {
    t.true(Buffer.from(encodeAck(seq)).equals(Buffer.from(encodeClientFrame(0, 'ack', { inbox_seq: seq }))), `seq ${seq}`);
  }
});

test('read and typing frames (group chatter) match the real codec', (t) => {
  for (const channel of ['grp-0f6c1a2e-93b4-4bd5-8c4e-1b2f3a4d5e6f', 'g', 'c'.repeat(200)]) {
    const enc = new ChatterEncoder(channel);
    t.true(enc.typing.equals(Buffer.from(encodeClientFrame(0, 'typing', { channel_id: channel }))), `typing, channel ${channel.length} chars`);
    for (const seq of [0, 1, 127, 128, 300, 16_384, 2 ** 35 + 3]) {
      t.true(enc.read(seq).equals(Buffer.from(encodeClientFrame(0, 'read', { channel_id: channel, channel_seq: seq }))), `read ${seq}, channel ${channel.length} chars`);
    }
  }
});

test('the scanner reads deliveries, acks, errors and welcomes as the real codec wrote them', (t) => {
  const scan = newScan();
  const delivery = encodeServerFrame(0, 'delivery', {
    inbox_seq: 2 ** 33 + 1,
    message: { message_id: '7234567890123456789', channel_id: 'dm-x', sender_id: 'u1', client_msg_id: '123456789', text: 'hello', created_at_ms: Date.now(), channel_seq: 42 },
  });
  scanServerFrame(delivery, scan);
  t.is(scan.body, ServerBody.delivery);
  t.is(scan.ref, 0);
  t.is(scan.inboxSeq, 2 ** 33 + 1);
  t.is(scan.clientMsgId, 123456789);
  t.is(scan.channelSeq, 42);
  t.true(new ChatterEncoder('dm-x').isChannel(delivery, scan.channelOff, scan.channelLen));
  t.false(new ChatterEncoder('dm-y').isChannel(delivery, scan.channelOff, scan.channelLen));

  const odd = encodeServerFrame(0, 'delivery', {
    inbox_seq: 3,
    message: { message_id: '1', channel_id: 'c', sender_id: 's', client_msg_id: 'not-a-number', text: 't', created_at_ms: 1, channel_seq: 1 },
  });
  t.is(scanServerFrame(odd, scan).clientMsgId, -1);

  const ack = encodeServerFrame(987_654, 'send_ack', { channel_id: 'c', client_msg_id: '987654', message_id: '1', channel_seq: 1, created_at_ms: 1 });
  scanServerFrame(ack, scan);
  t.is(scan.body, ServerBody.send_ack);
  t.is(scan.ref, 987_654);

  const err = encodeServerFrame(55, 'error', { code: 'RATE_LIMITED', message: 'slow down' });
  scanServerFrame(err, scan);
  t.is(scan.body, ServerBody.error);
  t.is(scan.ref, 55);
  t.is(scan.errorCode, 'RATE_LIMITED');

  const welcome = encodeServerFrame(0, 'welcome', { user_id: 'u', device_id: 'd', inbox_head_seq: 9, heartbeat_interval_ms: 5000, node_id: 'n1', resumed_after_inbox_seq: 0 });
  t.is(scanServerFrame(welcome, scan).body, ServerBody.welcome);

  const receipt = encodeServerFrame(0, 'read_receipt', { channel_id: 'c', user_id: 'u', channel_seq: 7 });
  t.is(scanServerFrame(receipt, scan).body, ServerBody.read_receipt);
  const typing = encodeServerFrame(0, 'typing', { channel_id: 'c', user_id: 'u', expires_in_ms: 3000 });
  t.is(scanServerFrame(typing, scan).body, ServerBody.typing);
});
