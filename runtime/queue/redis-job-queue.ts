import { createHash, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { DeadJob, DurableJobQueue, JobLease, QueuedJob } from './job-queue.ts';

export interface RedisJobQueueOptions {
  readonly url: string;
  /** Names the keys: `parley:{<name>}:...` (one hash slot, so the scripts also run on a Redis Cluster). */
  readonly name: string;
  /** How long a claim holds a job (default 30 s): XAUTOCLAIM's min-idle. Past every step a holder takes. */
  readonly leaseMs?: number;
  /** This worker's consumer name in the group; random by default. */
  readonly consumer?: string;
}

/** The consumer group every worker reads in. */
const GROUP = 'workers';
/** Jobs moved from the schedule to the stream per claim round, at most. */
const PROMOTE_LIMIT = 1_000;
/** Consumers with nothing pending and silent this long are dropped from the group (dead nodes' names). */
const CONSUMER_IDLE_MS = 10 * 60_000;

interface LuaScript {
  readonly lua: string;
  readonly sha: string;
}

const lua = (text: string): LuaScript => ({ lua: text, sha: createHash('sha1').update(text).digest('hex') });

/**
 * Whether the stream entry ARGV[entry] is still pending for consumer ARGV[consumer]: a holder
 * whose lease lapsed (XAUTOCLAIM gave the entry to another) must not move the job any more.
 */
const OURS = `
local function ours(stream, entry, consumer)
  local p = redis.call('XPENDING', stream, '${GROUP}', entry, entry, 1)
  return p[1] ~= nil and p[1][2] == consumer
end
`;

/** KEYS: job, schedule. ARGV: id, body, due. A job not yet claimed takes the new due time; one claimed keeps its holder's. */
const PUT = lua(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'body', ARGV[2])
  if redis.call('HEXISTS', KEYS[1], 'claimed') == 0 then redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1]) end
else
  redis.call('HSET', KEYS[1], 'body', ARGV[2], 'attempts', '0')
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
return 1
`);

/** KEYS: job, schedule. ARGV: id. */
const CANCEL = lua(`
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`);

/**
 * KEYS: schedule, stream. ARGV: now, limit, job key prefix. Moves due jobs from the schedule to
 * the stream, in one step each (a worker killed here leaves each job in one of the two).
 */
const PROMOTE = lua(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local job = ARGV[3] .. id
  if redis.call('EXISTS', job) == 1 then
    redis.call('HSET', job, 'claimed', '1')
    redis.call('XADD', KEYS[2], '*', 'id', id)
  end
end
return #ids
`);

/** KEYS: job. ARGV: mark. Work done stays recorded even if the lease lapsed meanwhile (it was done). */
const MARK = lua(`
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'm:' .. ARGV[1], '1') end
return 1
`);

/** KEYS: job, schedule, stream. ARGV: id, until, entry, consumer, failure ('' none), failed ('1'). */
const DEFER = lua(`${OURS}
if not ours(KEYS[3], ARGV[3], ARGV[4]) then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if ARGV[6] == '1' then
    redis.call('HINCRBY', KEYS[1], 'attempts', 1)
    redis.call('HSET', KEYS[1], 'err', ARGV[5])
  end
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
end
redis.call('XACK', KEYS[3], '${GROUP}', ARGV[3])
redis.call('XDEL', KEYS[3], ARGV[3])
return 1
`);

/** KEYS: job, schedule, stream. ARGV: id, entry. The job and its entry gone, in one step. */
const DROP = `
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('XACK', KEYS[3], '${GROUP}', ARGV[2])
redis.call('XDEL', KEYS[3], ARGV[2])
return 1
`;

/** KEYS: job, schedule, stream. ARGV: id, entry. Done is done, whoever holds the entry now. */
const FINISH = lua(DROP);

/** KEYS: job, schedule, stream, dead. ARGV: id, entry, consumer, failure, now, body and attempts as claimed. */
const BURY = lua(`${OURS}
if not ours(KEYS[3], ARGV[2], ARGV[3]) then return 0 end
local body, attempts, marks = ARGV[6], tonumber(ARGV[7]), {}
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  local f = h[i]
  if f == 'body' then body = h[i + 1]
  elseif f == 'attempts' then attempts = tonumber(h[i + 1])
  elseif string.sub(f, 1, 2) == 'm:' then marks[#marks + 1] = string.sub(f, 3) end
end
redis.call('HSET', KEYS[4], ARGV[1], cjson.encode({ body = body, attempts = attempts + 1, marks = marks, last_error = ARGV[4], dead_at_ms = ARGV[5] }))
${DROP}`);

/** KEYS: dead, schedule. ARGV: dead id, new id, body, due, job key prefix. */
const REVIVE = lua(`
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local d = cjson.decode(raw)
redis.call('HDEL', KEYS[1], ARGV[1])
local job = ARGV[5] .. ARGV[2]
redis.call('DEL', job)
redis.call('HSET', job, 'body', ARGV[3], 'attempts', '0')
for _, m in ipairs(d.marks) do redis.call('HSET', job, 'm:' .. m, '1') end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
return 1
`);

interface DeadRecord {
  readonly body: string;
  readonly attempts: number;
  /** cjson writes an empty Lua table as {}. */
  readonly marks: readonly string[] | Record<string, never>;
  readonly last_error: string;
  readonly dead_at_ms: string | number;
}

/**
 * The job queue in Redis (`--redis`), on a stream with a consumer group:
 *
 * - a job is a hash (`job:<id>`: body, attempts, last error, marks) and is either scheduled (in
 *   the sorted set `due`, scored by when it may run) or in flight (an entry of the stream
 *   `stream`, read by one consumer of the group `workers`);
 * - each claim round first moves due jobs from `due` to the stream (a script: one step per job),
 *   then takes entries whose holder went silent past the lease (XAUTOCLAIM, min-idle = leaseMs),
 *   then new ones (XREADGROUP);
 * - a holder ends its lease in one script each: `defer` puts the job back in `due` (a retry, or a
 *   wait) and acks and deletes the entry; `finish` deletes the job and the entry; `bury` moves it
 *   to the hash `dead`. `defer` and `bury` first check that the entry is still pending for this
 *   consumer, so a holder whose lease lapsed cannot move a job another worker took over.
 *
 * A worker killed at any point leaves each job in the schedule, in the stream (pending for it,
 * taken over after leaseMs) or done: nothing is lost. Delayed jobs need no polling of every job:
 * one ZRANGEBYSCORE per round finds the due ones. Redis itself should run with `appendonly yes`
 * for the queue to survive a Redis restart.
 */
export class RedisJobQueue implements DurableJobQueue {
  private readonly redis: Redis;
  private readonly leaseMs: number;
  private readonly consumer: string;
  private readonly keys: { readonly due: string; readonly stream: string; readonly dead: string; readonly job: string };
  private groupReady = false;
  private seen = 0;
  private lastCleanupMs = Date.now();

  constructor(o: RedisJobQueueOptions) {
    const base = `parley:{${o.name}}:`;
    this.keys = { due: `${base}due`, stream: `${base}stream`, dead: `${base}dead`, job: `${base}job:` };
    this.leaseMs = o.leaseMs ?? 30_000;
    this.consumer = o.consumer ?? randomUUID();
    this.redis = new Redis(o.url, {
      // A command waits through one reconnect at most, then fails: the caller logs it and its
      // next round (or the next decision) tries again, instead of piling up behind a dead Redis.
      maxRetriesPerRequest: 1,
      connectTimeout: 2_000,
      commandTimeout: 5_000,
      retryStrategy: (times) => Math.min(times * 200, 2_000),
    });
    this.redis.on('error', () => undefined); // reported through failed commands
  }

  get depth(): number {
    return this.seen;
  }

  async put(job: QueuedJob): Promise<void> {
    await this.run(PUT, [this.jobKey(job.id), this.keys.due], [job.id, job.body, job.dueMs]);
  }

  async cancel(id: string): Promise<void> {
    await this.run(CANCEL, [this.jobKey(id), this.keys.due], [id]);
  }

  async claim(max: number): Promise<JobLease[]> {
    await this.ensureGroup();
    const { due, stream } = this.keys;
    await this.run(PROMOTE, [due, stream], [Date.now(), PROMOTE_LIMIT, this.keys.job]);
    const entries: { entry: string; id: string }[] = [];
    try {
      // Entries whose holder has been silent past the lease: it died (or hung) mid-job.
      const auto = (await this.redis.xautoclaim(stream, GROUP, this.consumer, this.leaseMs, '0-0', 'COUNT', max)) as [string, [string, string[] | null][]];
      entries.push(...entriesOf(auto[1]));
      if (entries.length < max) {
        const read = (await this.redis.xreadgroup('GROUP', GROUP, this.consumer, 'COUNT', max - entries.length, 'STREAMS', stream, '>')) as [string, [string, string[] | null][]][] | null;
        entries.push(...entriesOf(read?.[0]?.[1] ?? []));
      }
    } catch (err) {
      // Redis restarted without its data: the group is gone with the stream; make it again.
      if (String((err as Error).message).startsWith('NOGROUP')) this.groupReady = false;
      throw err;
    }
    const p = this.redis.pipeline();
    for (const e of entries) p.hgetall(this.jobKey(e.id));
    p.zcard(due).xlen(stream);
    const results = (await p.exec()) ?? [];
    const fail = results.find(([err]) => err);
    if (fail) throw fail[0];
    const value = (i: number): unknown => results[i]![1];
    this.seen = Number(value(entries.length)) + Number(value(entries.length + 1));
    const leases: JobLease[] = [];
    const gone: string[] = [];
    entries.forEach((e, i) => {
      const h = value(i) as Record<string, string>;
      if (h['body'] === undefined) gone.push(e.entry); // cancelled, or finished under a lapsed lease
      else leases.push(leaseOf(e.id, e.entry, h));
    });
    if (gone.length > 0) await this.redis.multi().xack(stream, GROUP, ...gone).xdel(stream, ...gone).exec();
    await this.dropIdleConsumers();
    return leases;
  }

  async mark(lease: JobLease, mark: string): Promise<void> {
    await this.run(MARK, [this.jobKey(lease.id)], [mark]);
  }

  async defer(lease: JobLease, untilMs: number, failure?: string): Promise<void> {
    await this.run(DEFER, [this.jobKey(lease.id), this.keys.due, this.keys.stream], [lease.id, untilMs, lease.token, this.consumer, failure ?? '', failure === undefined ? '0' : '1']);
  }

  async finish(lease: JobLease): Promise<void> {
    await this.run(FINISH, [this.jobKey(lease.id), this.keys.due, this.keys.stream], [lease.id, lease.token]);
  }

  async bury(lease: JobLease, failure: string): Promise<void> {
    await this.run(BURY, [this.jobKey(lease.id), this.keys.due, this.keys.stream, this.keys.dead], [lease.id, lease.token, this.consumer, failure, Date.now(), lease.body, lease.attempts]);
  }

  async dead(): Promise<DeadJob[]> {
    const all = await this.redis.hgetall(this.keys.dead);
    return Object.entries(all)
      .map(([id, raw]): DeadJob => {
        const d = JSON.parse(raw) as DeadRecord;
        return { id, body: d.body, attempts: d.attempts, marks: Array.isArray(d.marks) ? d.marks : [], lastError: d.last_error, deadAtMs: Number(d.dead_at_ms) };
      })
      .sort((a, b) => a.deadAtMs - b.deadAtMs || a.id.localeCompare(b.id));
  }

  async revive(id: string, as: QueuedJob): Promise<boolean> {
    return (await this.run(REVIVE, [this.keys.dead, this.keys.due], [id, as.id, as.body, as.dueMs, this.keys.job])) === 1;
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private jobKey(id: string): string {
    return this.keys.job + id;
  }

  /** EVALSHA, loading the script on its first use on this Redis (NOSCRIPT). */
  private async run(script: LuaScript, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await this.redis.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
      return this.redis.eval(script.lua, keys.length, ...keys, ...args);
    }
  }

  private async ensureGroup(): Promise<void> {
    if (this.groupReady) return;
    try {
      // From id 0: entries added before the group existed are read too.
      await this.redis.xgroup('CREATE', this.keys.stream, GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).startsWith('BUSYGROUP')) throw err;
    }
    this.groupReady = true;
  }

  /**
   * Every worker start is a new consumer name; the names of workers long gone, with nothing
   * pending, are dropped once a minute. One with entries pending is never dropped (that would
   * drop the entries): XAUTOCLAIM moves them away first, after which it goes too.
   */
  private async dropIdleConsumers(): Promise<void> {
    if (Date.now() - this.lastCleanupMs < 60_000) return;
    this.lastCleanupMs = Date.now();
    const consumers = (await this.redis.xinfo('CONSUMERS', this.keys.stream, GROUP)) as unknown[][];
    for (const c of consumers) {
      const f = fieldsOf(c);
      if (f['name'] !== this.consumer && Number(f['pending']) === 0 && Number(f['idle']) > CONSUMER_IDLE_MS) {
        await this.redis.xgroup('DELCONSUMER', this.keys.stream, GROUP, String(f['name']));
      }
    }
  }
}

function entriesOf(raw: readonly [string, string[] | null][]): { entry: string; id: string }[] {
  const out: { entry: string; id: string }[] = [];
  for (const [entry, fields] of raw) {
    const f = fieldsOf(fields ?? []);
    if (typeof f['id'] === 'string') out.push({ entry, id: f['id'] });
  }
  return out;
}

function fieldsOf(flat: readonly unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1];
  return out;
}

function leaseOf(id: string, entry: string, h: Record<string, string>): JobLease {
  const marks = Object.keys(h)
    .filter((k) => k.startsWith('m:'))
    .map((k) => k.slice(2));
  return { id, body: h['body']!, attempts: Number(h['attempts'] ?? 0), marks, token: entry, ...(h['err'] !== undefined ? { lastError: h['err'] } : {}) };
}
