/**
 * The Socket.IO peer: Socket.IO 4 on its default engine (the `ws` package) doing the same relay
 * as Parley through rooms: `j` joins a room (acknowledged), `m` (room, id, text) goes to the
 * room's other members, `h` is a heartbeat. No auth, no persistence. Websocket transport only
 * (what a benchmark client would pick), no compression.
 *
 *   node --import tsx bench/peers/socketio/server.ts --port 0
 * prints one JSON line {"msg":"serving","port":N} on stdout when listening. GET /healthz answers.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
};
const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '0'));

const http = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'ok', connections: io.engine.clientsCount }));
    return;
  }
  // Anything else under /socket.io is Engine.IO's; the rest is not ours.
  if (!req.url?.startsWith('/socket.io')) {
    res.writeHead(404);
    res.end();
  }
});
const io = new Server(http, {
  transports: ['websocket'],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  pingInterval: 25_000,
  pingTimeout: 20_000,
  maxHttpBufferSize: 1 << 20,
});
io.on('connection', (socket) => {
  socket.on('j', (room: unknown, ack?: () => void) => {
    if (typeof room === 'string') void socket.join(room);
    if (typeof ack === 'function') ack();
  });
  socket.on('m', (room: unknown, id: unknown, text: unknown) => {
    if (typeof room === 'string') socket.to(room).emit('m', id, text);
  });
  socket.on('h', () => undefined);
});
http.listen({ host, port, backlog: 4096 }, () => {
  process.stdout.write(JSON.stringify({ msg: 'serving', port: (http.address() as AddressInfo).port }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
// Started by the bench coordinator: leave with it, even if it was killed without cleaning up.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 1_000).unref();
