/**
 * The local-service launcher against the real thing: each test starts a private instance in a
 * fresh temp dir on a free port, makes a real request through the project's client library,
 * stops it and checks that the pid is gone. A missing service is installed by the start
 * functions; if that fails the test fails (never skips).
 */
import test, { type ExecutionContext } from 'ava';
import cassandra from 'cassandra-driver';
import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  ServiceErrorCodes,
  findFreePort,
  isRunning,
  readState,
  startCassandra,
  startEtcd,
  startRedis,
  type RunningService,
} from '../services/index.ts';

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

async function freshDir(t: ExecutionContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `services-test-${prefix}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Stops on teardown too, so a failed assertion never leaves a server behind. */
function stopOnTeardown(t: ExecutionContext, service: RunningService): void {
  t.teardown(() => service.stop({ graceMs: 0 }));
}

function assertGone(t: ExecutionContext, service: RunningService): void {
  t.false(isRunning(service), `${service.name} pid ${service.pid} still runs`);
  // Reaped, not just a zombie: the kernel no longer knows the pid at all.
  const err = t.throws(() => process.kill(service.pid, 0));
  t.is((err as NodeJS.ErrnoException | undefined)?.code, 'ESRCH');
}

test('etcd: starts on a private port, serves v3 put/get, stops by pid', async (t) => {
  t.timeout(10 * 60_000, 'etcd install or start took too long');
  const dataDir = await freshDir(t, 'etcd');
  const etcd = await startEtcd({ dataDir, port: await findFreePort() });
  stopOnTeardown(t, etcd);
  t.regex(etcd.address, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.true(isRunning(etcd));

  const client = new Etcd3({ hosts: etcd.address });
  try {
    await client.put('services-test/key').value('hello');
    t.is(await client.get('services-test/key').string(), 'hello');
  } finally {
    client.close();
  }

  await etcd.stop();
  assertGone(t, etcd);
});

test('redis: starts on a private port, answers SET/GET, stops by pid', async (t) => {
  t.timeout(10 * 60_000, 'redis install or start took too long');
  const dataDir = await freshDir(t, 'redis');
  const redis = await startRedis({ dataDir, port: await findFreePort() });
  stopOnTeardown(t, redis);
  t.is(redis.address, `redis://127.0.0.1:${redis.port}`);

  const client = new Redis(redis.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await client.connect();
    t.is(await client.ping(), 'PONG');
    await client.set('services-test', 'hello');
    t.is(await client.get('services-test'), 'hello');
  } finally {
    client.disconnect();
  }

  await redis.stop();
  assertGone(t, redis);
});

test('cassandra 5.0: starts on a private port, serves CQL, stops by pid', async (t) => {
  // A cold run resolves ~100 jars from Maven Central first.
  t.timeout(25 * 60_000, 'cassandra install or start took too long');
  const dataDir = await freshDir(t, 'cassandra');
  const started = Date.now();
  const node = await startCassandra({ dataDir, port: await findFreePort() });
  stopOnTeardown(t, node);
  t.log(`cassandra ready in ${((Date.now() - started) / 1000).toFixed(1)} s at ${node.address}`);

  const client = new cassandra.Client({
    contactPoints: [node.address],
    localDataCenter: 'datacenter1',
    socketOptions: { connectTimeout: 10_000, readTimeout: 30_000 },
  });
  try {
    await client.connect();
    const local = await client.execute('SELECT release_version FROM system.local');
    t.regex(String(local.first().get('release_version')), /^5\.0\.\d+$/);

    await client.execute("CREATE KEYSPACE services_test WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}");
    await client.execute('CREATE TABLE services_test.kv (k text PRIMARY KEY, v text)');
    await client.execute('INSERT INTO services_test.kv (k, v) VALUES (?, ?)', ['key', 'hello'], { prepare: true });
    const row = await client.execute('SELECT v FROM services_test.kv WHERE k = ?', ['key'], { prepare: true });
    t.is(row.first().get('v'), 'hello');
  } finally {
    await client.shutdown();
  }

  await node.stop();
  assertGone(t, node);
});

test('a taken port fails fast with SERVICE_PORT_IN_USE and starts nothing', async (t) => {
  t.timeout(10 * 60_000);
  const dataDir = await freshDir(t, 'redis-busy');
  const blocker: Server = createServer();
  await new Promise<void>((done) => blocker.listen({ host: '127.0.0.1', port: 0 }, done));
  t.teardown(() => new Promise<void>((done) => blocker.close(() => done())));
  const address = blocker.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;

  const err = await t.throwsAsync(startRedis({ dataDir, port }));
  t.is((err as { code?: string } | undefined)?.code, ServiceErrorCodes.PORT_IN_USE);
});

test('CLI: up records the pid, status shows it, down stops exactly it', async (t) => {
  t.timeout(10 * 60_000);
  const baseDir = await freshDir(t, 'cli');
  const env = { ...process.env, PARLEY_SERVICES_DIR: baseDir, PARLEY_REDIS_PORT: String(await findFreePort()) };
  const cli = (...args: string[]) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'bin', 'services.ts'), ...args], {
      cwd: PROJECT_ROOT,
      env,
      timeout: 5 * 60_000,
    });

  const up = await cli('up', 'redis');
  t.is(up.stdout, `redis redis://127.0.0.1:${env.PARLEY_REDIS_PORT}\n`);
  const record = (await readState(join(baseDir, 'state.json'))).services.redis;
  if (record === undefined) {
    t.fail('state.json has no redis record');
    return;
  }
  // Whatever happens below, the process this test caused goes away.
  t.teardown(() => {
    if (isRunning(record)) process.kill(record.pid, 'SIGKILL');
  });
  t.true(isRunning(record));

  const again = await cli('up', 'redis');
  t.is(again.stdout, up.stdout, 'a second up reuses the running instance');
  t.regex(again.stderr, /already runs/);

  const status = await cli('status');
  t.regex(status.stdout, new RegExp(`^redis redis://127\\.0\\.0\\.1:\\d+ pid=${record.pid} running`, 'm'));

  await cli('down');
  t.false(isRunning(record));
  t.deepEqual((await readState(join(baseDir, 'state.json'))).services, {});
});
