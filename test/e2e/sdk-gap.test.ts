/**
 * The SDK never hands an app a delivery after a hole: when the stream skips past what the client
 * handed out (or past an explicit `lastInboxSeq`), it reads the missing range with `sync` first
 * and hands out what arrived meanwhile after it, in inbox order, each once, across reconnects. An
 * app that keeps no seq is not replayed the device's history (see cursor-resume.test.ts).
 *
 * The skips are real: a device's stored cursor moved on by another client of the same device, and
 * a delivery frame lost in one client (the SDK's @internal `dropDeliveryFrames` hook). The network
 * is a real `ws` socket to a real parleyd; the wrapper below only watches its frames, holds back
 * sync answers until released, or cuts the socket at a chosen frame.
 */
import test from 'ava';
import WebSocket from 'ws';
import { ParleyClient, type Delivery, type WebSocketFactory, type WebSocketLike } from '../../client/index.ts';
import { decodeServerFrame } from '../../proto/client-codec.ts';
import type { ServerFrame } from '../../proto/client-frames.ts';
import { connect, eventually, newUser, startServer, type ServerHandle, type TestUser } from '../support/server.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** What a test does with the frames of its client's sockets. */
interface Wire {
  /** Server frames seen on any socket, in arrival order. */
  readonly seen: ServerFrame[];
  /** While true, sync answers are kept back (in arrival order) instead of reaching the client. */
  holdSyncResults: boolean;
  /** Called for each server frame after the client handled it; may cut the socket. */
  afterFrame?: (f: ServerFrame, socket: { cut(): void }) => void;
  /** Hands the kept-back sync answers to the client and stops keeping them. */
  release(): void;
}

/** A real `ws` socket per connection, seen through `wire` (see above). */
function wiredWebSocket(): { WS: WebSocketFactory; wire: Wire } {
  const kept: (() => void)[] = [];
  const wire: Wire = {
    seen: [],
    holdSyncResults: false,
    release() {
      this.holdSyncResults = false;
      for (const pass of kept.splice(0)) pass();
    },
  };
  class Wired implements WebSocketLike {
    private readonly inner: WebSocket;
    onopen: ((ev: unknown) => void) | null = null;
    onmessage: ((ev: { data: unknown }) => void) | null = null;
    onclose: ((ev: { code: number; reason: string }) => void) | null = null;
    onerror: ((ev: unknown) => void) | null = null;

    constructor(url: string) {
      this.inner = new WebSocket(url);
      this.inner.binaryType = 'arraybuffer';
      this.inner.onopen = (ev) => this.onopen?.(ev);
      this.inner.onerror = (ev) => this.onerror?.(ev);
      this.inner.onclose = (ev) => this.onclose?.({ code: ev.code, reason: ev.reason });
      this.inner.onmessage = (ev) => {
        const f = decodeServerFrame(new Uint8Array(ev.data as ArrayBuffer));
        wire.seen.push(f);
        const pass = (): void => {
          if (this.inner.readyState !== WebSocket.OPEN) return; // a cut socket delivers nothing more
          this.onmessage?.({ data: ev.data });
          wire.afterFrame?.(f, { cut: () => this.inner.terminate() });
        };
        if (wire.holdSyncResults && f.body === 'sync_result') kept.push(pass);
        else pass();
      };
    }
    get binaryType(): string {
      return this.inner.binaryType;
    }
    set binaryType(_: string) {
      // always arraybuffer: the frames are decoded here too
    }
    get readyState(): number {
      return this.inner.readyState;
    }
    send(data: Uint8Array): void {
      this.inner.send(data);
    }
    close(code?: number, reason?: string): void {
      this.inner.close(code, reason);
    }
  }
  return { WS: Wired, wire };
}

function wiredClient(
  server: ServerHandle,
  user: TestUser,
  deviceId: string,
  options: { reconnect: boolean; lastInboxSeq?: number; requestTimeoutMs?: number },
): { client: ParleyClient; deliveries: Delivery[]; wire: Wire } {
  const { WS, wire } = wiredWebSocket();
  const client = new ParleyClient({ servers: [server.wsUrl], token: user.token, deviceId, WebSocket: WS, ...options });
  const deliveries: Delivery[] = [];
  client.on('delivery', (d) => deliveries.push(d));
  return { client, deliveries, wire };
}

const seqs = (ds: readonly Delivery[]): number[] => ds.map((d) => d.inbox_seq);

test('sdk gap - an explicit lastInboxSeq below the device cursor: the entries the server resumes past come first, by sync; no lastInboxSeq: no replay', async (t) => {
  const server = await startServer();
  try {
    const [a, b] = [await newUser(server, 'a'), await newUser(server, 'b')];
    const { channel_id: dm } = await a.http.openDm(b.userId);
    const first = await connect(server, b, 'phone');
    for (let i = 1; i <= 5; i++) await a.http.postMessage(dm, `m${i}`, `message ${i}`);
    t.true(await eventually(() => first.client.lastAcked === 5, 5_000));
    first.client.close(); // the close flushes the ack; the server counts it at once

    // The app kept only up to 2; the server resumes this device after its cursor, 5.
    const again = await connect(server, b, 'phone', { lastInboxSeq: 2 });
    t.is(again.client.welcome?.resumed_after_inbox_seq, 5);
    await a.http.postMessage(dm, 'm6', 'message 6');
    t.true(await eventually(() => again.deliveries.length === 4, 5_000), `got ${seqs(again.deliveries).join(',')}`);
    t.deepEqual(seqs(again.deliveries), [3, 4, 5, 6]);
    t.deepEqual(again.deliveries.map((d) => d.message.text), ['message 3', 'message 4', 'message 5', 'message 6']);
    await eventually(() => again.client.lastAcked === 6);
    again.client.close();

    // An app that keeps no seq starts where the server resumes: nothing old comes again.
    const fresh = await connect(server, b, 'phone');
    t.is(fresh.client.welcome?.resumed_after_inbox_seq, 6);
    await sleep(300);
    t.deepEqual(seqs(fresh.deliveries), []);
    fresh.client.close();
  } finally {
    await server.stop();
  }
});

test('sdk gap - a reconnect that resumes past what the client handed out fills the range page by page; live deliveries held meanwhile follow in order, once', async (t) => {
  const server = await startServer({ flags: { 'send-rate': '100000', 'send-burst': '100000' } });
  try {
    const [a, b] = [await newUser(server, 'a'), await newUser(server, 'b')];
    const { channel_id: dm } = await a.http.openDm(b.userId);
    const x = wiredClient(server, b, 'phone', { reconnect: false });
    await x.client.connect();
    for (let i = 1; i <= 3; i++) await a.http.postMessage(dm, `m${i}`, `message ${i}`);
    t.true(await eventually(() => x.deliveries.length === 3));
    x.client.close();

    // Another client of the same device (the app on a second tab, say) takes 4..K and acks them,
    // so the device's cursor moves past what x handed out.
    const K = 3 + 250; // more than one fill page (200)
    const other = await connect(server, b, 'phone', { lastInboxSeq: 3 });
    await Promise.all(range(4, K).map((i) => a.http.postMessage(dm, `m${i}`, `message ${i}`)));
    t.true(await eventually(() => other.client.lastAcked === K, 15_000), `acked ${other.client.lastAcked}`);
    other.client.close();

    // x comes back: the server resumes after K. x reads 4..K with sync, whose first answer is
    // held back on the wire until live deliveries have reached x, so they must wait behind it.
    x.wire.holdSyncResults = true;
    const welcome = await x.client.connect();
    t.is(welcome.resumed_after_inbox_seq, K);
    for (let i = K + 1; i <= K + 5; i++) await a.http.postMessage(dm, `m${i}`, `message ${i}`);
    const livePushed = (): number => x.wire.seen.filter((f) => f.body === 'delivery' && f.delivery.inbox_seq > K).length;
    t.true(await eventually(() => livePushed() === 5, 5_000));
    t.deepEqual(seqs(x.deliveries), [1, 2, 3], 'nothing after the hole before it is filled');
    x.wire.release();

    t.true(await eventually(() => x.deliveries.length === K + 5, 10_000), `got ${x.deliveries.length}`);
    t.deepEqual(seqs(x.deliveries), range(1, K + 5), 'inbox order, no hole, no duplicate');
    t.true(x.wire.seen.filter((f) => f.body === 'sync_result').length >= 2, 'the range was read in pages');
    // One DM: each inbox entry is the channel message of the same seq.
    t.true(x.deliveries.every((d) => d.message.channel_seq === d.inbox_seq), 'each entry carries its own message');
    await a.http.postMessage(dm, 'after', 'after the fill');
    t.true(await eventually(() => x.deliveries.length === K + 6));
    t.is(x.deliveries[K + 5]!.inbox_seq, K + 6);
    await sleep(200);
    t.is(x.deliveries.length, K + 6, 'no duplicate afterwards');
    x.client.close();
  } finally {
    await server.stop();
  }
});

test('sdk gap - a lost delivery frame is filled by sync before the next one; a socket cut while filling hands out nothing after the hole, and the reconnect resumes it', async (t) => {
  const server = await startServer();
  try {
    const [a, b] = [await newUser(server, 'a'), await newUser(server, 'b')];
    const { channel_id: dm } = await a.http.openDm(b.userId);
    const x = wiredClient(server, b, 'phone', { reconnect: true });
    const disconnects: number[][] = [];
    x.client.on('disconnect', () => disconnects.push(seqs(x.deliveries)));
    await x.client.connect();

    // One connection: frame 1 is lost, 2 skips ahead and waits while 1 is read.
    x.client.dropDeliveryFrames = 1;
    for (let i = 1; i <= 3; i++) await a.http.postMessage(dm, `m${i}`, `message ${i}`);
    t.true(await eventually(() => x.deliveries.length === 3));
    t.deepEqual(seqs(x.deliveries), [1, 2, 3]);
    t.is(x.client.dropDeliveryFrames, 0);

    // Frame 4 is lost; 5 waits for the fill, and the socket is cut right after 5 reached the
    // client, before the sync answer can come. 5 must not be handed out after the hole.
    await eventually(() => x.client.lastAcked === 3);
    x.client.dropDeliveryFrames = 1;
    x.wire.afterFrame = (f, socket) => {
      if (f.body === 'delivery' && f.delivery.inbox_seq === 5) {
        x.wire.afterFrame = undefined;
        socket.cut();
      }
    };
    await a.http.postMessage(dm, 'm4', 'message 4');
    await a.http.postMessage(dm, 'm5', 'message 5');
    t.true(await eventually(() => disconnects.length === 1, 5_000), 'the socket was cut');
    t.deepEqual(disconnects[0], [1, 2, 3], 'nothing after the hole when the socket went');

    // The SDK reconnects by itself and resumes after its last ack (3): 4 and 5, then live ones.
    t.true(await eventually(() => x.deliveries.length === 5, 10_000), `got ${seqs(x.deliveries).join(',')}`);
    await a.http.postMessage(dm, 'm6', 'message 6');
    t.true(await eventually(() => x.deliveries.length === 6));
    await sleep(200);
    t.deepEqual(seqs(x.deliveries), range(1, 6), 'inbox order across the reconnect, no hole, no duplicate');
    x.client.close();
  } finally {
    await server.stop();
  }
});

test('sdk gap - a fill whose sync keeps timing out is given up after three tries: an error, a reconnect, and the next connection fills the hole', async (t) => {
  const server = await startServer();
  try {
    const [a, b] = [await newUser(server, 'a'), await newUser(server, 'b')];
    const { channel_id: dm } = await a.http.openDm(b.userId);
    const first = await connect(server, b, 'phone');
    for (let i = 1; i <= 5; i++) await a.http.postMessage(dm, `m${i}`, `message ${i}`);
    t.true(await eventually(() => first.client.lastAcked === 5, 5_000));
    first.client.close();

    // The app has up to 2; the device's cursor is 5. Every sync answer on the first connection is
    // kept back, so each page times out (300 ms).
    const x = wiredClient(server, b, 'phone', { reconnect: true, lastInboxSeq: 2, requestTimeoutMs: 300 });
    const errors: string[] = [];
    const disconnects: number[][] = [];
    x.client.on('error', (e) => errors.push(e.code));
    x.client.on('disconnect', () => {
      disconnects.push(seqs(x.deliveries));
      x.wire.holdSyncResults = false; // the next connection's answers go through
    });
    x.wire.holdSyncResults = true;
    const welcome = await x.client.connect();
    t.is(welcome.resumed_after_inbox_seq, 5);
    await a.http.postMessage(dm, 'm6', 'message 6'); // pushed live, held behind the hole

    t.true(await eventually(() => disconnects.length === 1, 10_000), 'the client gave up on that connection');
    t.deepEqual(errors, ['TIMEOUT']);
    t.deepEqual(disconnects[0], [], 'nothing after the hole, the held delivery included');
    t.true(await eventually(() => x.deliveries.length === 4, 10_000), `got ${seqs(x.deliveries).join(',')}`);
    await sleep(200);
    t.deepEqual(seqs(x.deliveries), [3, 4, 5, 6]);
    x.client.close();
  } finally {
    await server.stop();
  }
});
