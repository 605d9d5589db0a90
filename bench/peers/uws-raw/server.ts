/**
 * The "raw uWS" peer: a bare uWebSockets.js pub/sub relay, the ceiling for any server built on
 * the same socket library. No auth, no actors, no storage, no per-message objects in JS beyond
 * the callback. Binary protocol, first byte is the opcode:
 *
 *   's' + topic             subscribe; answered with 'k'
 *   'p' + len + topic + payload   publish payload to the topic's other subscribers
 *   'h'                     heartbeat (resets the idle timer)
 *
 *   node --import tsx bench/peers/uws-raw/server.ts --port 0
 * prints one JSON line {"msg":"serving","port":N} on stdout when listening. GET /healthz answers.
 */
import uWS from 'uWebSockets.js';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
};
const host = arg('host', '127.0.0.1');
const port = Number(arg('port', '0'));
const OK = new Uint8Array([0x6b]);
let connections = 0;
let published = 0;

const app = uWS.App();
app.ws('/ws', {
  compression: uWS.DISABLED,
  maxPayloadLength: 1 << 20,
  maxBackpressure: 4 << 20,
  closeOnBackpressureLimit: 1,
  idleTimeout: 32,
  sendPingsAutomatically: false,
  open: () => {
    connections++;
  },
  close: () => {
    connections--;
  },
  message: (ws, message) => {
    const bytes = new Uint8Array(message);
    const op = bytes[0];
    if (op === 0x70) {
      const len = bytes[1]!;
      ws.publish(message.slice(2, 2 + len), message.slice(2 + len), true);
      published++;
    } else if (op === 0x73) {
      ws.subscribe(message.slice(1));
      ws.send(OK, true);
    }
    // 'h' and anything else: nothing to do; receiving it reset the idle timer.
  },
});
app.get('/healthz', (res) => {
  res.writeHeader('content-type', 'application/json').end(JSON.stringify({ status: 'ok', connections, published }));
});
app.listen(host, port, (socket) => {
  if (!socket) {
    process.stderr.write(`uws-raw: cannot listen on ${host}:${port}\n`);
    process.exit(1);
  }
  process.stdout.write(JSON.stringify({ msg: 'serving', port: uWS.us_socket_local_port(socket) }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
// Started by the bench coordinator: leave with it, even if it was killed without cleaning up.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 1_000).unref();
