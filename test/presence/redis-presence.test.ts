import test from 'ava';
import { Redis } from 'ioredis';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findFreePort, startRedis, type RunningService } from '../../services/index.ts';
import { connect, eventually, newUser, startServer, type ServerHandle } from '../support/server.ts';

let redis: RunningService;
let redisPort: number;
let redisDir: string;
let server: ServerHandle;

test.before(async () => {
  redisPort = await findFreePort();
  redisDir = mkdtempSync(join(tmpdir(), 'parley-redis-'));
  redis = await startRedis({ dataDir: redisDir, port: redisPort });
  server = await startServer({ flags: { redis: `redis://127.0.0.1:${redisPort}` } });
});

test.after.always(async () => {
  await server?.stop();
  await redis?.stop({ graceMs: 0 });
});

async function commandStats(client: Redis): Promise<Record<string, number>> {
  const info = await client.info('commandstats');
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_(\w+(?:\|\w+)?):calls=(\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

test.serial('redis presence - 100 group members are answered with one Redis round trip (one MGET)', async (t) => {
  const owner = await newUser(server, 'rp');
  const members = await Promise.all(Array.from({ length: 99 }, () => newUser(server, 'rm')));
  const { channel_id } = await owner.http.createGroup('hundred', members.map((m) => m.userId));
  t.truthy(channel_id);
  const online = await Promise.all(members.slice(0, 10).map((m) => connect(server, m)));
  const oc = await connect(server, owner);
  const ids = [owner.userId, ...members.map((m) => m.userId)];
  await oc.client.presence(ids.slice(0, 2)); // warm the co-member cache
  const admin = new Redis(redisPort, '127.0.0.1');
  try {
    await admin.config('RESETSTAT');
    const result = await oc.client.presence(ids);
    const stats = await commandStats(admin);
    t.is(result.length, 100);
    t.is(result.filter((p) => p.online).length, 11);
    t.is(stats.mget, 1, `commands during the query: ${JSON.stringify(stats)}`);
    t.falsy(stats.get, 'no per-user GETs');
  } finally {
    admin.disconnect();
    for (const c of [...online, oc]) c.client.close();
  }
});

test.serial('redis presence - Redis down: presence degrades to this node, chat keeps working; Redis back: it is used again', async (t) => {
  const a = await newUser(server);
  const b = await newUser(server);
  await a.http.addFriend(b.userId);
  await b.http.addFriend(a.userId);
  const { channel_id } = await a.http.openDm(b.userId);
  const bc = await connect(server, b);
  await redis.stop({ graceMs: 0 });
  const ac = await connect(server, a);
  t.true(await eventually(() => bc.presences.some((p) => p.user_id === a.userId && p.online)), 'presence still flows, in process');
  const ack = await ac.client.send(channel_id, 'while redis is down');
  t.is(ack.channel_seq, 1);
  t.true(await eventually(() => bc.deliveries.length === 1));
  const [seen] = await bc.client.presence([a.userId]);
  t.true(seen!.online, 'answered from the fallback');

  redis = await startRedis({ dataDir: redisDir, port: redisPort });
  const admin = new Redis(redisPort, '127.0.0.1');
  try {
    // The node's client reconnects on its own (backoff up to 2 s); no restart of Parley.
    await new Promise((r) => setTimeout(r, 2_500));
    ac.client.close(); // an offline transition, which must now reach Redis
    let written = false;
    for (const end = Date.now() + 10_000; !written && Date.now() < end; ) {
      written = (await admin.exists(`parley:presence:seen:${a.userId}`)) === 1;
      if (!written) await new Promise((r) => setTimeout(r, 100));
    }
    t.true(written, 'the transition after the outage reached Redis');
    t.true(server.logs.some((l) => l.includes('redis unavailable; presence falls back')));
  } finally {
    admin.disconnect();
    bc.client.close();
  }
});
