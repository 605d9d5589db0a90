import test from 'ava';
import { readFileSync } from 'node:fs';
import { descriptorSource } from '../../proto/descriptor-source.ts';
import { decodeClientFrame, decodeServerFrame, encodeClientFrame, encodeServerFrame } from '../../proto/index.ts';

test('proto - the checked-in descriptor matches client.proto (run `npm run proto` after editing it)', (t) => {
  t.is(readFileSync(new URL('../../proto/client-descriptor.ts', import.meta.url), 'utf8'), descriptorSource());
});

test('proto - frames round-trip with numbers for uint64 fields and the body named', (t) => {
  const f = decodeClientFrame(encodeClientFrame(42, 'hello', { token: 't', device_id: 'd', last_inbox_seq: 7 }));
  t.is(f.ref, 42);
  t.is(f.body, 'hello');
  t.is(f.body === 'hello' && f.hello.last_inbox_seq, 7);
  const s = decodeServerFrame(
    encodeServerFrame(0, 'send_ack', { channel_id: 'c', client_msg_id: 'x', message_id: '7234567890123456789', channel_seq: 3, created_at_ms: 1_795_000_000_000 }),
  );
  t.is(s.body, 'send_ack');
  if (s.body !== 'send_ack') return;
  t.is(typeof s.send_ack.channel_seq, 'number');
  t.is(s.send_ack.created_at_ms, 1_795_000_000_000);
  t.is(s.send_ack.message_id, '7234567890123456789');
});

test('proto - garbage and empty frames are BAD_FRAME', (t) => {
  t.is(t.throws(() => decodeClientFrame(new Uint8Array([0xff, 0xff, 0xff])))?.['code' as keyof Error], 'BAD_FRAME');
  t.is(t.throws(() => decodeClientFrame(new Uint8Array([])))?.['code' as keyof Error], 'BAD_FRAME');
});
