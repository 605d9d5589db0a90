import test from 'ava';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../config/config.ts';
import { MAX_SEND_FRAME_BYTES, MAX_SEND_JSON_BYTES, MAX_TEXT_CODE_POINTS } from '../../actors/tables.ts';
import { startServer } from '../support/server.ts';
import { configReference } from '../../config/reference.ts';
import { grpcAdvertiseOf } from '../../bin/node-assembly.ts';

test('config - REFERENCE.md is generated from settings.ts (run `npm run config:doc`)', (t) => {
  t.is(readFileSync(new URL('../../config/REFERENCE.md', import.meta.url), 'utf8'), configReference());
});

test('config - defaults follow the contract', (t) => {
  const c = loadConfig({}, {});
  t.is(c.port, 8080);
  t.is(c.data_dir, './data');
  t.is(c.send_rate, 50);
  t.is(c.send_burst, 100);
  t.true(c.auth_per_minute >= 300);
  t.is(c.heartbeat_interval_ms, 5_000);
  t.is(c.presence_timeout_ms, 30_000);
  t.is(c.scrypt_log_n, 17);
  t.is(c.max_http_body_bytes, 2 * 1024 * 1024);
  t.is(c.max_frame_bytes, 512 * 1024);
  t.is(c.node_number, undefined, 'unset: claimed from etcd in a cluster, 1 on a single node (bin/node-assembly.ts)');
});

test('config - the file, then PARLEY_* variables, then flags: later wins', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-config-'));
  const file = join(dir, 'parley.json');
  writeFileSync(file, JSON.stringify({ port: 1111, host: '0.0.0.0', node_id: 'from-file' }));
  const c = loadConfig({ config: file, port: '3333' }, { PARLEY_PORT: '2222', PARLEY_NODE_ID: 'from-env' });
  t.is(c.port, 3333);
  t.is(c.node_id, 'from-env');
  t.is(c.host, '0.0.0.0');
  const viaEnvFile = loadConfig({}, { PARLEY_CONFIG: file });
  t.is(viaEnvFile.port, 1111);
});

test('config - unknown keys and bad values are refused with the setting named', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-config-'));
  const file = join(dir, 'bad.json');
  writeFileSync(file, JSON.stringify({ prot: 1 }));
  t.throws(() => loadConfig({ config: file }, {}), { message: /unknown setting "prot"/ });
  t.throws(() => loadConfig({ port: '70000' }, {}), { message: /--port must be at most 65535/ });
  t.throws(() => loadConfig({}, { PARLEY_NODE_NUMBER: '1024' }), { message: /PARLEY_NODE_NUMBER must be at most 1023/ });
  // Token lifetime: 10 s (tests) to 30 days (how long a starting node looks ahead for logouts).
  t.is(loadConfig({ token_ttl_s: '10' }, {}).token_ttl_s, 10);
  t.throws(() => loadConfig({ token_ttl_s: '9' }, {}), { message: /--token-ttl-s must be at least 10/ });
  t.is(loadConfig({ token_ttl_s: '2592000' }, {}).token_ttl_s, 2_592_000);
  t.throws(() => loadConfig({ token_ttl_s: '2592001' }, {}), { message: /--token-ttl-s must be at most 2592000/ });
  writeFileSync(file, '{ not json');
  t.throws(() => loadConfig({ config: file }, {}), { message: /cannot read config file/ });
});

test('config - a body or frame cap too small for the largest valid send is refused, saying why', (t) => {
  // 12 bytes a code point is the worst JSON encoding (an escaped surrogate pair); 4 in UTF-8.
  t.true(MAX_SEND_JSON_BYTES >= MAX_TEXT_CODE_POINTS * 12 + 128 * 6);
  t.true(MAX_SEND_FRAME_BYTES >= MAX_TEXT_CODE_POINTS * 4 + 2 * 128 * 3);
  t.is(loadConfig({ max_http_body_bytes: String(MAX_SEND_JSON_BYTES) }, {}).max_http_body_bytes, MAX_SEND_JSON_BYTES);
  t.throws(() => loadConfig({ max_http_body_bytes: String(MAX_SEND_JSON_BYTES - 1) }, {}), {
    message: new RegExp(`--max-http-body-bytes must be at least ${MAX_SEND_JSON_BYTES} \\(the largest body of a valid send`),
  });
  t.throws(() => loadConfig({}, { PARLEY_MAX_HTTP_BODY_BYTES: '1048576' }), { message: /PARLEY_MAX_HTTP_BODY_BYTES must be at least/ });
  t.is(loadConfig({ max_frame_bytes: String(MAX_SEND_FRAME_BYTES) }, {}).max_frame_bytes, MAX_SEND_FRAME_BYTES);
  t.throws(() => loadConfig({ max_frame_bytes: String(MAX_SEND_FRAME_BYTES - 1) }, {}), {
    message: new RegExp(`--max-frame-bytes must be at least ${MAX_SEND_FRAME_BYTES} \\(the largest frame of a valid send`),
  });
});

test('config - parleyd with a body cap below the largest valid send exits 2 at start with the reason', async (t) => {
  const err = await t.throwsAsync(startServer({ flags: { 'max-http-body-bytes': '1048576' } }));
  t.regex(err!.message, /exited with 2 before serving/);
  t.regex(err!.message, /--max-http-body-bytes must be at least \d+ \(the largest body of a valid send/);
});

test('config - push_allow_insecure is a switch (a bare flag is true) and push_vapid_subject a mailto: or https: contact', async (t) => {
  t.false(loadConfig({}, {}).push_allow_insecure);
  t.true(loadConfig({ push_allow_insecure: true }, {}).push_allow_insecure, 'what `--push-allow-insecure` alone gives');
  t.false(loadConfig({ push_allow_insecure: 'false' }, {}).push_allow_insecure);
  t.true(loadConfig({}, { PARLEY_PUSH_ALLOW_INSECURE: '1' }).push_allow_insecure);
  t.throws(() => loadConfig({}, { PARLEY_PUSH_ALLOW_INSECURE: 'yes' }), { message: /PARLEY_PUSH_ALLOW_INSECURE must be true or false/ });
  t.is(loadConfig({}, {}).push_vapid_subject, undefined);
  const err = await t.throwsAsync(startServer({ flags: { 'push-vapid-subject': 'ops@example.com' } }));
  t.regex(err!.message, /--push-vapid-subject must be a mailto: address or an https: URL/);
});

test('config - grpc_advertise is HOST:PORT; a bad one stops parleyd at start with the reason', async (t) => {
  t.is(loadConfig({}, {}).grpc_advertise, undefined);
  t.is(grpcAdvertiseOf({ grpc_advertise: undefined }), undefined, 'unset: peers dial the listen address');
  for (const ok of ['127.0.0.1:7000', 'node-2.internal:443', '[::1]:65535', 'h:1']) t.is(grpcAdvertiseOf({ grpc_advertise: ok }), ok);
  for (const bad of ['127.0.0.1', 'http://h:7000', 'h:0', 'h:65536', ':7000', 'h:7000/x', 'h :1']) {
    t.throws(() => grpcAdvertiseOf({ grpc_advertise: bad }), { message: /--grpc-advertise must be HOST:PORT/ }, bad);
  }
  const err = await t.throwsAsync(startServer({ flags: { 'grpc-advertise': 'no-port' } }));
  t.regex(err!.message, /exited with 2 before serving/);
  t.regex(err!.message, /--grpc-advertise must be HOST:PORT/);
});
