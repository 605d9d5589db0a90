/**
 * The chaos suite's TCP proxy against a real echo server on 127.0.0.1: a plain pipe, a cut that
 * holds every byte (open and new connections) until healed, and a shaped link that delays each
 * chunk by delay ± jitter without ever reordering the stream.
 */
import test from 'ava';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { TcpProxy } from '../../chaos/tcp-proxy.ts';

let echo: Server;
let echoPort: number;

test.before(async () => {
  echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  echoPort = (echo.address() as { port: number }).port;
});
test.after.always(() => new Promise<void>((r) => echo.close(() => r())));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A client through the proxy that collects what comes back, with arrival times. */
async function client(port: number, connected = true): Promise<{ socket: Socket; got: () => string; arrivals: { at: number; text: string }[] }> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  const arrivals: { at: number; text: string }[] = [];
  socket.on('data', (d: Buffer) => arrivals.push({ at: Date.now(), text: d.toString() }));
  if (connected) await new Promise<void>((r) => socket.once('connect', () => r()));
  return { socket, got: () => arrivals.map((a) => a.text).join(''), arrivals };
}

async function until(pred: () => boolean, ms = 3_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!pred() && Date.now() < end) await sleep(5);
  return pred();
}

test('tcp proxy - passes bytes both ways unchanged', async (t) => {
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: echoPort });
  t.teardown(() => proxy.close());
  const c = await client(proxy.port);
  const text = 'x'.repeat(200_000) + 'end';
  c.socket.write(text);
  t.true(await until(() => c.got().length === text.length));
  t.is(c.got(), text);
  c.socket.destroy();
});

test('tcp proxy - a cut holds open and new connections; heal delivers everything, in order', async (t) => {
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: echoPort });
  t.teardown(() => proxy.close());
  const open = await client(proxy.port);
  open.socket.write('a');
  t.true(await until(() => open.got() === 'a'));
  proxy.cut();
  open.socket.write('b');
  const fresh = await client(proxy.port);
  fresh.socket.write('new');
  await sleep(300);
  t.is(open.got(), 'a', 'nothing crosses a cut link');
  t.is(fresh.got(), '', 'a connection made during the cut reaches nobody');
  proxy.heal();
  open.socket.write('c');
  t.true(await until(() => open.got() === 'abc' && fresh.got() === 'new'), `${open.got()} / ${fresh.got()}`);
  open.socket.destroy();
  fresh.socket.destroy();
});

test('tcp proxy - a shaped link delays each chunk by delay ± jitter and keeps the stream in order', async (t) => {
  const proxy = await TcpProxy.start({ host: '127.0.0.1', port: echoPort });
  t.teardown(() => proxy.close());
  proxy.shape({ delayMs: 100, jitterMs: 20, stallChance: 0, stallMs: 0 });
  const c = await client(proxy.port);
  const sentAt: number[] = [];
  for (let i = 0; i < 20; i++) {
    sentAt.push(Date.now());
    c.socket.write(`<${String(i).padStart(2, '0')}>`);
    await sleep(15);
  }
  t.true(await until(() => c.got().length === 80, 5_000));
  t.is(c.got(), Array.from({ length: 20 }, (_, i) => `<${String(i).padStart(2, '0')}>`).join(''), 'never reordered');
  // Each way pays the delay once (the echo goes through the proxy and back): 2 x (80..120) ms.
  const first = c.arrivals[0]!.at - sentAt[0]!;
  t.true(first >= 150 && first <= 400, `first echo after ${first} ms`);
  c.socket.destroy();
});
