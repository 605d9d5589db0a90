import test from 'ava';
import { decodeMessage, decodeServerFrame } from '../../proto/client-codec.ts';
import { completeMessage, createdAtMsOf, deliveryFrame, encodeMessageBody, historyResultFrame, syncResultFrame } from '../../proto/message-bytes.ts';
import type { Message } from '../../proto/client-frames.ts';

const message = (over: Partial<Message> = {}): Message => ({
  message_id: '123456789012345678',
  channel_id: 'dm-7a1f',
  sender_id: 'u-1',
  client_msg_id: 'c-1',
  text: 'héllo 😀',
  created_at_ms: 1_764_000_000_123,
  channel_seq: 300,
  ...over,
});

/** Decoded frames are protobufjs instances (with `body` a getter); compared as plain data. */
function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = plain(x);
  if ('body' in v) out['body'] = (v as { body: unknown }).body;
  return out;
}

const bytesOf = (m: Message): Uint8Array => completeMessage(encodeMessageBody(m), m.channel_id, m.channel_seq);

test('message bytes - a stored body plus channel id and seq decodes as the whole message', (t) => {
  for (const m of [
    message(),
    message({ text: 'x'.repeat(100_000), channel_seq: 2 ** 40 }),
    message({ text: '😀'.repeat(100_000) }),
    message({ client_msg_id: '', created_at_ms: 0, channel_seq: 1 }),
  ]) {
    t.deepEqual(decodeMessage(bytesOf(m)), m);
  }
});

test('message bytes - frames built around message bytes decode as the protobufjs codec reads them', (t) => {
  const a = message();
  const b = message({ message_id: '9', channel_seq: 301, text: 'second' });
  t.deepEqual(plain(decodeServerFrame(deliveryFrame(2 ** 33 + 5, bytesOf(a)))), { ref: 0, body: 'delivery', delivery: { inbox_seq: 2 ** 33 + 5, message: a } });
  const sync = decodeServerFrame(syncResultFrame(77, [{ inboxSeq: 1, message: bytesOf(a) }, { inboxSeq: 2, message: bytesOf(b) }], true));
  t.is(sync.ref, 77);
  t.is(sync.body, 'sync_result');
  t.deepEqual(plain(sync.body === 'sync_result' && sync.sync_result.deliveries), [{ inbox_seq: 1, message: a }, { inbox_seq: 2, message: b }]);
  t.true(sync.body === 'sync_result' && sync.sync_result.has_more);
  const empty = decodeServerFrame(syncResultFrame(3, [], false));
  t.deepEqual(plain(empty.body === 'sync_result' && empty.sync_result.deliveries), []);
  t.false(empty.body === 'sync_result' && empty.sync_result.has_more);
  const history = decodeServerFrame(historyResultFrame(1_000_000, [bytesOf(b), bytesOf(a)], false));
  t.is(history.ref, 1_000_000);
  t.deepEqual(plain(history.body === 'history_result' && history.history_result.messages), [b, a]);
});

test('message bytes - created_at_ms is read without decoding, past long texts; cut bytes read as 0', (t) => {
  for (const text of ['', 'x', 'y'.repeat(200), 'z'.repeat(100_000)]) {
    t.is(createdAtMsOf(bytesOf(message({ text }))), 1_764_000_000_123, `text of ${text.length}`);
  }
  t.is(createdAtMsOf(bytesOf(message({ created_at_ms: 0 }))), 0, 'absent');
  const whole = bytesOf(message());
  // Cut anywhere: the value if its field was whole before the cut, else 0; never a throw or a part.
  for (let cut = 0; cut < whole.length; cut++) t.true([0, 1_764_000_000_123].includes(createdAtMsOf(whole.subarray(0, cut))), `cut at ${cut}`);
  t.is(createdAtMsOf(Uint8Array.of(0x08, 0x80)), 0, 'a varint that never ends');
});
