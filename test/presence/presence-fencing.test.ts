/**
 * Fenced presence: one contract, run against every directory (in process, the store on a real
 * SQLite file, a real Redis). An owner epoch older than one the directory took (by a write or a
 * fence) is refused and changes nothing, so a superseded owner (its node paused past its lease
 * and resumed) cannot make a user look online, or offline. The last test plays that takeover
 * with real epochs from the store's journal.
 */
import test from 'ava';
import { Redis } from 'ioredis';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../runtime/log.ts';
import { InProcessPresenceDirectory, KvPresenceDirectory, RedisPresenceDirectory, type PresenceDirectory } from '../../runtime/presence/index.ts';
import { SqliteStore } from '../../runtime/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../runtime/storage/index.ts';
import { findFreePort, startRedis, type RunningService } from '../../services/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'parley-presence-fence-'));
let redis: RunningService;
let redisUrl: string;
const stores: Store[] = [];
const closers: (() => Promise<void>)[] = [];

test.before(async () => {
  const port = await findFreePort();
  redis = await startRedis({ dataDir: join(dir, 'redis'), port });
  redisUrl = `redis://127.0.0.1:${port}`;
});

test.after.always(async () => {
  for (const c of closers) await c();
  for (const s of stores) await s.close();
  await redis?.stop({ graceMs: 0 });
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
function sqliteStore(): Store {
  const store = new SqliteStore({ path: join(dir, `db-${++n}.db`), log: silentLogger() });
  stores.push(store);
  return store;
}

/**
 * A Redis directory whose client is connected: before that its writes go to the in-process
 * fallback (by design), which would leave the scripts untested.
 */
async function connectedRedis(prefix: string): Promise<RedisPresenceDirectory> {
  const d = new RedisPresenceDirectory({ url: redisUrl, onlineTtlMs: 60_000, log: silentLogger(), prefix });
  closers.push(() => d.close());
  const admin = new Redis(redisUrl);
  try {
    for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
      await d.set('probe', offline(0), 0);
      if ((await admin.exists(`${prefix}seen:probe`)) === 1) return d;
    }
  } finally {
    admin.disconnect();
  }
  throw new Error('the presence directory did not reach Redis in 10 s');
}

const makers: Record<string, () => PresenceDirectory | Promise<PresenceDirectory>> = {
  'in process': () => new InProcessPresenceDirectory(),
  'store (sqlite)': () => new KvPresenceDirectory(sqliteStore().kv),
  redis: () => connectedRedis(`t${++n}:`),
};

const online = (at: number) => ({ online: true, lastActiveAtMs: at });
const offline = (at: number) => ({ online: false, lastActiveAtMs: at });

async function stateOf(d: PresenceDirectory, id: string) {
  return (await d.getMany([id])).get(id)!;
}

for (const [name, make] of Object.entries(makers)) {
  test(`${name} - a write of an older epoch than the last write is refused and changes nothing`, async (t) => {
    const d = await make();
    t.true(await d.set('u', online(100), 2));
    t.true(await d.set('u', offline(200), 3), 'a newer owner writes');
    t.false(await d.set('u', online(300), 2), 'the older one is refused');
    t.deepEqual(await stateOf(d, 'u'), offline(200));
    t.true(await d.set('u', online(400), 3), 'the same epoch writes again');
    t.deepEqual(await stateOf(d, 'u'), online(400));
  });

  test(`${name} - a fence refuses older writers from then on and leaves the state as it was`, async (t) => {
    const d = await make();
    t.true(await d.set('u', online(100), 1));
    t.true(await d.fence('u', 2));
    t.deepEqual(await stateOf(d, 'u'), online(100), 'the fence itself changes nothing a reader sees');
    t.false(await d.set('u', offline(150), 1));
    t.deepEqual(await stateOf(d, 'u'), online(100));
    t.true(await d.set('u', offline(200), 2));
    t.false(await d.fence('u', 1), 'a fence of an older epoch is refused too');
    t.true(await d.fence('u', 2), 'fencing again at the same epoch is fine');
    t.deepEqual(await stateOf(d, 'u'), offline(200));
  });

  test(`${name} - a fence on a user never seen leaves them offline and never seen`, async (t) => {
    const d = await make();
    t.true(await d.fence('nobody', 5));
    t.deepEqual(await stateOf(d, 'nobody'), offline(0));
    t.false(await d.set('nobody', online(1), 4));
    t.deepEqual(await stateOf(d, 'nobody'), offline(0));
  });

  test(`${name} - epochs are per user`, async (t) => {
    const d = await make();
    t.true(await d.set('a', online(1), 9));
    t.true(await d.set('b', online(2), 1), 'b has its own epochs');
    const states = await d.getMany(['a', 'b', 'c']);
    t.deepEqual([...states.values()], [online(1), online(2), offline(0)]);
  });
}

test('redis - a stale refresh does not bring back an online state its successor removed', async (t) => {
  const prefix = 'refresh:';
  const d = await connectedRedis(prefix);
  const admin = new Redis(redisUrl);
  t.teardown(() => admin.disconnect());
  t.true(await d.set('u', online(100), 4));
  t.true(await d.refresh('u', 4));
  t.true(await d.set('u', offline(200), 5), 'the successor took the user offline');
  t.false(await d.refresh('u', 4), 'the stale owner refreshes');
  t.is(await admin.exists(`${prefix}on:u`), 0, 'no online key was created');
  t.is(await admin.get(`${prefix}epoch:u`), '5');
  t.deepEqual(await stateOf(d, 'u'), offline(200));
});

test('store - rows of older owners are dropped by the next write; a row written before epochs were kept is read, then replaced', async (t) => {
  const store = sqliteStore();
  await store.kv.write([{ op: 'put', table: 'presence', partition: 'old', key: '', value: JSON.stringify(online(7)) }]);
  const d = new KvPresenceDirectory(store.kv);
  t.deepEqual(await stateOf(d, 'old'), online(7), 'the legacy row reads as epoch 0');
  t.true(await d.set('old', offline(8), 1));
  t.true(await d.fence('old', 2));
  t.true(await d.set('old', online(9), 3));
  const rows = await store.kv.list('presence', 'old');
  t.is(rows.length, 1, `one row left: ${JSON.stringify(rows)}`);
  t.deepEqual(await stateOf(d, 'old'), online(9));
});

for (const [name, make] of Object.entries(makers)) {
  test(`${name} - takeover with real owner epochs: the paused owner resumes and cannot make the user look online`, async (t) => {
    const store = sqliteStore();
    const d = await make();
    const pid = 'inbox/u1';
    // Owner A (node n3) activates the user and sees a device connect.
    const a = await store.journal.acquire(pid, 'n3');
    t.true(await d.set('u1', online(1_000), a));
    // n3 is paused past its lease; n1 takes the user over, fences, and finds no device: offline.
    const b = await store.journal.acquire(pid, 'n1');
    t.true(b > a);
    t.true(await d.fence('u1', b));
    t.true(await d.set('u1', offline(2_000), b));
    // n3 resumes: its activation still believes the device is there and writes "online".
    t.false(await d.set('u1', online(3_000), a), 'the stale owner is refused');
    t.false(await d.fence('u1', a));
    t.deepEqual(await stateOf(d, 'u1'), offline(2_000), 'nobody sees the user online');
  });
}
