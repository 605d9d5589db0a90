/**
 * GET /readyz, GET /metrics and request ids on an in-process ChatNode over a real SQLite store,
 * wrapped so a test can make the store stop answering and the node lose its registration.
 */
import { AdminTokens } from '../../actors/auth/admin-token.ts';
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { openStore, type Store } from '../../runtime/storage/index.ts';
import { instrumentStore, NodeMetrics } from '../../runtime/metrics/index.ts';
import { ChatNode } from '../../actors/chat-node.ts';
import { TokenSigner } from '../../actors/auth/tokens.ts';
import { Snowflake } from '../../actors/ids/snowflake.ts';
import { CodedError } from '../../runtime/errors.ts';

const lines: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
    done();
  },
});
const log = pino({ level: 'debug', base: { node_id: 'r1' } }, sink);

let storeMode: 'ok' | 'hang' | 'fail' = 'ok';
let registered = true;
let node: ChatNode;
let base = '';
let raw: Store;
const dir = mkdtempSync(join(tmpdir(), 'parley-readyz-'));

test.before(async () => {
  raw = await openStore('sqlite', { log, dataDir: dir, durability: 'os' });
  const metrics = new NodeMetrics();
  const timed = instrumentStore(raw, metrics);
  // The readiness probe reads through kv.get: that is the call the test breaks.
  const store: Store = {
    journal: timed.journal,
    describe: timed.describe,
    close: () => timed.close(),
    kv: {
      ...timed.kv,
      list: (...a) => timed.kv.list(...a),
      write: (w) => timed.kv.write(w),
      putIfAbsent: (...a) => timed.kv.putIfAbsent(...a),
      get: (t, p, k) =>
        storeMode === 'hang' ? new Promise(() => undefined) : storeMode === 'fail' ? Promise.reject(new CodedError('UNAVAILABLE', 'store down (test)')) : timed.kv.get(t, p, k),
    },
  };
  node = new ChatNode({
    nodeId: 'r1',
    ids: new Snowflake(1),
    host: '127.0.0.1',
    port: 0,
    store,
    signer: new TokenSigner(randomBytes(32), 3600),
    adminTokens: new AdminTokens(randomBytes(32)),
    passwordCost: { logN: 10, r: 8, p: 1 },
    log,
    timings: { heartbeatIntervalMs: 5_000, presenceTimeoutMs: 15_000, touchIntervalMs: 2_500, fanoutTimeoutMs: 2_000 },
    limits: { sendRatePerSec: 50, sendBurst: 100, authPerMinute: 600, loginFailLimit: 20, loginFailWindowMs: 900_000, maxFrameBytes: 65_536, maxHttpBodyBytes: 65_536, maxInflightSends: 10_000, sessionMaxUnsentBytes: 65_536 },
    metrics,
    registration: () => (registered ? undefined : 'not registered in the cluster (test)'),
  });
  base = `http://127.0.0.1:${await node.start()}`;
});

test.after.always(async () => {
  storeMode = 'ok';
  await node?.stop(1001);
  await raw?.close().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

const readyz = async (): Promise<{ status: number; body: { status: string; reason?: string } }> => {
  const res = await fetch(`${base}/readyz`);
  return { status: res.status, body: (await res.json()) as { status: string; reason?: string } };
};

test.serial('readyz - 200 on a registered node whose store answers', async (t) => {
  t.deepEqual(await readyz(), { status: 200, body: { status: 'ready' } });
});

test.serial('readyz - 503 with the reason when the store fails or does not answer in time', async (t) => {
  storeMode = 'fail';
  const failed = await readyz();
  t.is(failed.status, 503);
  t.regex(failed.body.reason ?? '', /^store unavailable: UNAVAILABLE/);
  storeMode = 'hang';
  const t0 = Date.now();
  const hung = await readyz();
  t.is(hung.status, 503);
  t.regex(hung.body.reason ?? '', /store did not answer within 1000 ms/);
  t.true(Date.now() - t0 < 3_000);
  storeMode = 'ok';
  t.is((await readyz()).status, 200);
});

test.serial('readyz - 503 with the reason while the node is not registered; healthz still 200', async (t) => {
  registered = false;
  try {
    const r = await readyz();
    t.is(r.status, 503);
    t.is(r.body.reason, 'not registered in the cluster (test)');
    t.is((await fetch(`${base}/healthz`)).status, 200);
  } finally {
    registered = true;
  }
});

test.serial('request id - a sane X-Request-Id is echoed and logged; an insane one is replaced', async (t) => {
  const res = await fetch(`${base}/healthz`, { headers: { 'x-request-id': 'req-42.abc' } });
  t.is(res.headers.get('x-request-id'), 'req-42.abc');
  const line = lines.find((l) => l.request_id === 'req-42.abc' && l.msg === 'http request');
  t.truthy(line);
  t.is(line?.node_id, 'r1');
  t.is(line?.path, '/healthz');
  const bad = await fetch(`${base}/nope`, { headers: { 'x-request-id': 'x'.repeat(200) } });
  t.is(bad.status, 404);
  t.regex(bad.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  const fresh = await fetch(`${base}/healthz`);
  t.regex(fresh.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  // The not-ready warning of a failing probe carries the id too.
  registered = false;
  await fetch(`${base}/readyz`, { headers: { 'x-request-id': 'probe-7' } });
  registered = true;
  t.truthy(lines.find((l) => l.request_id === 'probe-7' && l.msg === 'not ready' && l.node_id === 'r1'));
});

test.serial('metrics - Prometheus text with every figure named in the README', async (t) => {
  const res = await fetch(`${base}/metrics`);
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  for (const name of [
    'parley_connections',
    'parley_actors_active',
    'parley_mailbox_depth',
    'parley_mailbox_depth_peak',
    'parley_messages_in_total',
    'parley_messages_out_total',
    'parley_send_to_delivery_seconds',
    'parley_store_op_seconds',
    'parley_push_queue_depth',
    'parley_socket_unsent_bytes_peak',
    'parley_sockets_closed_unread_total',
    'parley_sessions_fell_behind_total',
    'parley_ephemeral_frames_dropped_total',
    'nodejs_eventloop_lag_p99_seconds',
  ]) {
    t.true(text.includes(`# TYPE ${name} `), name);
  }
  t.regex(text, /parley_actors_active\{kind="session"\} 0/);
  t.regex(text, /parley_store_op_seconds_count\{op="kv_get"\} [1-9]/);
});
