#!/usr/bin/env -S node --import tsx
/**
 * parleyctl: the operator's tool. Two families of commands:
 *
 * Against running nodes, over their admin routes (actors/api/admin-api.ts), on one node
 * (`--url http://host:port`) or a cluster (`--etcd hosts`, membership read from etcd); a table
 * by default, one JSON object with `--json`:
 *
 *   parleyctl nodes --etcd http://127.0.0.1:2379
 *   parleyctl where channel g-4b1e... --etcd ...
 *   parleyctl drain n2 --etcd ...
 *   parleyctl stats --url http://127.0.0.1:8080 --data-dir ./data
 *   parleyctl users show alice --etcd ... | parleyctl users disable alice --etcd ...
 *
 * Authority: a short-lived operator token signed with the cluster's secret (--secret-file, or
 * --data-dir's signing.secret, or the secret the nodes share in etcd), actors/auth/admin-token.ts.
 * Exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 unreachable, 5 refused (bin/ctl/ctl-error.ts).
 *
 * On a node's data directory directly (no HTTP, no password hashing per user):
 *
 *   parleyctl users provision --data-dir DIR --count 250000 --prefix bench --out users.jsonl
 *   parleyctl token mint --data-dir DIR --user-id 5f0c...
 *   parleyctl push dead-letters --data-dir DIR [--redis URL] [--json] [--retry ID | --retry --all]
 *
 * `users provision` writes users through the storage layer in big batches, in the order
 * Accounts.create uses (profile first, then the username claim by putIfAbsent, so a username is
 * never overwritten and never points nowhere), and mints a token for each with the node's
 * signing secret. All users share ONE password hash: by default a marker that no password
 * matches (they can only use the minted tokens); with --password, one scrypt hash of it.
 * Output: one JSON object per line, {"user_id","username","token"}.
 *
 * Safe to run while a node serves the same file (SQLite serialises the writers); run it before
 * starting the node for the fastest result.
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { ClusterTarget } from './ctl/cluster-target.ts';
import { CtlError } from './ctl/ctl-error.ts';
import { drainCommand, nodesCommand, PLACED_KINDS, statsCommand, userDisableCommand, userShowCommand, whereCommand, type CommandOutput } from './ctl/operator-commands.ts';
import { hashPassword } from '../actors/auth/password.ts';
import { deriveKey, loadSigningSecret } from '../actors/auth/signing-secret.ts';
import { newTokenId, TokenSigner } from '../actors/auth/tokens.ts';
import { Tables, type UserProfile } from '../actors/tables.ts';
import { silentLogger } from '../runtime/log.ts';
import { openStore, type KeyValueWrite, type Store } from '../runtime/storage/index.ts';
import { PUSH_QUEUE, listDeadLetters, retryDeadLetters, type DeadLetter } from '../actors/push/index.ts';
import { KvJobQueue, RedisJobQueue } from '../runtime/queue/index.ts';

/** A password hash no password verifies against (verifyPassword wants six `$` parts). */
export const NO_LOGIN_HASH = 'provisioned$no-password-login';
const USERNAME = /^[a-z0-9_.-]{3,32}$/;

export interface ProvisionOptions {
  readonly dataDir: string;
  readonly store?: string;
  readonly secretFile?: string;
  readonly count: number;
  readonly prefix: string;
  /** First user number: usernames are prefix + (start .. start+count-1). */
  readonly start?: number;
  readonly out: string;
  readonly password?: string;
  readonly scryptLogN?: number;
  readonly tokenTtlS?: number;
  /** Rows per kv.write call. */
  readonly batch?: number;
  /** kv.write / putIfAbsent calls in flight. */
  readonly inFlight?: number;
  readonly durability?: 'fsync' | 'os';
  readonly onProgress?: (done: number, total: number, phase: string) => void;
}

export interface ProvisionResult {
  readonly created: number;
  /** Usernames that were already taken (left as they were; not in the output). */
  readonly skipped: number;
  readonly seconds: number;
  readonly usersPerSecond: number;
  readonly phases: Record<string, number>;
}

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

/** Runs `work` over `items` with at most `limit` promises in flight. */
async function pool<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++;
      await work(items[i]!, i);
    }
  });
  await Promise.all(runners);
}

function writeChunk(stream: WriteStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

export async function provisionUsers(o: ProvisionOptions): Promise<ProvisionResult> {
  if (!Number.isInteger(o.count) || o.count < 1) throw new Error('--count must be at least 1');
  const start = o.start ?? 0;
  const last = `${o.prefix}${start + o.count - 1}`;
  if (!USERNAME.test(`${o.prefix}${start}`) || !USERNAME.test(last)) {
    throw new Error(`usernames ${o.prefix}${start}..${last} must be 3-32 characters of a-z 0-9 _ . -`);
  }
  const t0 = performance.now();
  const phases: Record<string, number> = {};
  const mark = (name: string, since: number): number => {
    const now = performance.now();
    phases[name] = Math.round(now - since) / 1000;
    return now;
  };
  mkdirSync(o.dataDir, { recursive: true });
  const signer = tokenSigner(o, o.tokenTtlS ?? 86_400);
  const passwordHash = o.password ? await hashPassword(o.password, { logN: o.scryptLogN ?? 17, r: 8, p: 1 }) : NO_LOGIN_HASH;
  const store: Store = await openStore(o.store ?? 'sqlite:', { log: silentLogger(), dataDir: o.dataDir, durability: o.durability ?? 'os' });
  let t = performance.now();
  const batch = Math.max(1, o.batch ?? 2_000);
  const inFlight = Math.max(1, o.inFlight ?? 16);
  try {
    const now = Date.now();
    const ids: string[] = new Array<string>(o.count);
    const names: string[] = new Array<string>(o.count);
    for (let i = 0; i < o.count; i++) {
      ids[i] = randomUUID();
      names[i] = `${o.prefix}${start + i}`;
    }
    // Rows go in key order: B-tree appends instead of random inserts all over the file.
    const byId = Array.from({ length: o.count }, (_, i) => i).sort((a, b) => (ids[a]! < ids[b]! ? -1 : 1));
    const byName = Array.from({ length: o.count }, (_, i) => i).sort((a, b) => (names[a]! < names[b]! ? -1 : 1));
    // 1. Profiles, many rows per write: random ids never collide, so plain puts are safe.
    const chunks: number[] = [];
    for (let i = 0; i < o.count; i += batch) chunks.push(i);
    let done = 0;
    await pool(chunks, inFlight, async (from) => {
      const to = Math.min(o.count, from + batch);
      const writes: KeyValueWrite[] = [];
      for (let j = from; j < to; j++) {
        const i = byId[j]!;
        const profile: UserProfile = { username: names[i]!, password_hash: passwordHash, created_at_ms: now };
        writes.push({ op: 'put', table: Tables.user, partition: ids[i]!, key: 'profile', value: JSON.stringify(profile) });
      }
      await store.kv.write(writes);
      done += to - from;
      o.onProgress?.(done, o.count, 'profiles');
    });
    t = mark('profiles', t);
    // 2. Username claims: putIfAbsent each, thousands in flight (the store group-commits them).
    const created = new Uint8Array(o.count);
    done = 0;
    await pool(chunks, inFlight, async (from) => {
      const to = Math.min(o.count, from + batch);
      const claims: Promise<void>[] = [];
      for (let j = from; j < to; j++) {
        const i = byName[j]!;
        claims.push(
          store.kv.putIfAbsent(Tables.username, names[i]!, '', ids[i]!).then((r) => {
            created[i] = r.created ? 1 : 0;
          }),
        );
      }
      await Promise.all(claims);
      done += to - from;
      o.onProgress?.(done, o.count, 'usernames');
    });
    t = mark('usernames', t);
    // 3. Profiles whose username was taken are removed again (what Accounts.create does).
    const orphans: KeyValueWrite[] = [];
    for (let i = 0; i < o.count; i++) {
      if (!created[i]) orphans.push({ op: 'delete', table: Tables.user, partition: ids[i]!, key: 'profile' });
    }
    for (let i = 0; i < orphans.length; i += batch) await store.kv.write(orphans.slice(i, i + batch));
    t = mark('cleanup', t);
    // 4. Tokens, written as JSON lines in large chunks.
    const out = createWriteStream(o.out, { encoding: 'utf8' });
    const opened = new Promise<void>((resolve, reject) => {
      out.once('open', () => resolve());
      out.once('error', reject);
    });
    await opened;
    const issuedAt = Math.floor(Date.now() / 1000);
    const claimsBase = { iat: issuedAt, exp: issuedAt + (o.tokenTtlS ?? 86_400) };
    let text = '';
    let written = 0;
    for (let i = 0; i < o.count; i++) {
      if (!created[i]) continue;
      // Each token is a login of its own (sid) and a distinct token (jti), as a login's would be.
      const token = signer.sign({ sub: ids[i]!, sid: newTokenId(), jti: newTokenId(), ...claimsBase });
      text += `{"user_id":"${ids[i]}","username":"${names[i]}","token":"${token}"}\n`;
      written++;
      if (text.length > 1 << 20) {
        await writeChunk(out, text);
        text = '';
        o.onProgress?.(written, o.count, 'tokens');
      }
    }
    await writeChunk(out, text);
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    mark('tokens', t);
    const seconds = (performance.now() - t0) / 1000;
    return { created: written, skipped: o.count - written, seconds, usersPerSecond: Math.round(written / seconds), phases };
  } finally {
    await store.close();
  }
}

export function mintToken(o: { dataDir: string; secretFile?: string; userId: string; ttlS?: number }): string {
  return tokenSigner(o, o.ttlS ?? 86_400).issue(o.userId).token;
}

/** Signs as the node does (bin/node-assembly.ts): the token key derived from the node's secret. */
function tokenSigner(o: { dataDir: string; secretFile?: string | undefined }, ttlS: number): TokenSigner {
  const secret = loadSigningSecret({ dataDir: o.dataDir, ...(o.secretFile ? { secretFile: o.secretFile } : {}) });
  return new TokenSigner(deriveKey(secret, 'tokens'), ttlS);
}

/**
 * `parleyctl push dead-letters`: reads (and with --retry, rewrites) the push queue the nodes
 * share: the store's tables, or Redis when the nodes run with --redis (then give the same URL
 * here). A running node's notifier picks retried jobs up on its next poll.
 */
export async function deadLetters(o: { dataDir: string; store?: string | undefined; redis?: string | undefined; json?: boolean | undefined; retry?: string | boolean | undefined; all?: boolean | undefined }): Promise<string> {
  if (o.retry === true && !o.all) throw new Error('--retry needs a dead letter id, or --all');
  if (o.all && o.retry === undefined) throw new Error('--all goes with --retry');
  const store = o.redis ? undefined : await openStore(o.store ?? 'sqlite:', { log: silentLogger(), dataDir: o.dataDir });
  const queue = store ? new KvJobQueue(store.kv, { name: PUSH_QUEUE }) : new RedisJobQueue({ url: o.redis!, name: PUSH_QUEUE });
  try {
    if (o.retry !== undefined) {
      const wanted = o.all ? 'all' : [String(o.retry)];
      const retried = await retryDeadLetters(queue, wanted);
      if (wanted !== 'all' && retried.length === 0) throw new Error(`no dead letter ${String(o.retry)}`);
      return o.json ? JSON.stringify({ retried }) + '\n' : `retried ${retried.length}: ${retried.join(' ')}\n`;
    }
    const letters = await listDeadLetters(queue);
    return o.json ? JSON.stringify({ dead_letters: letters }) + '\n' : deadLetterTable(letters);
  } finally {
    await queue.close();
    await store?.close();
  }
}

function deadLetterTable(letters: readonly DeadLetter[]): string {
  const rows = [['ID', 'USER', 'CHANNEL', 'ATTEMPTS', 'DEAD AT', 'LAST ERROR']];
  for (const d of letters) rows.push([d.job.id, d.job.user_id, d.job.channel_id, String(d.attempts), new Date(d.dead_at_ms).toISOString(), d.last_error]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '));
  return `${lines.join('\n')}\n${letters.length} dead letter${letters.length === 1 ? '' : 's'}\n`;
}

interface TargetFlags {
  url?: string;
  etcd?: string;
  clusterPrefix: string;
  secretFile?: string;
  dataDir?: string;
  timeoutMs: number;
  json?: boolean;
}

/** The flags every command against running nodes takes. */
function targetCommand(parent: Command, nameAndArgs: string, description: string): Command {
  return parent
    .command(nameAndArgs)
    .description(description)
    .option('--url <url>', 'one node\'s HTTP address (http://host:port); the cluster is the members it sees')
    .option('--etcd <hosts>', 'the cluster registry: etcd endpoints, comma-separated (as the nodes\' --etcd)')
    .option('--cluster-prefix <prefix>', 'the nodes\' --cluster-prefix', '/parley')
    .option('--secret-file <file>', 'the cluster secret file (nodes started with --secret-file)')
    .option('--data-dir <dir>', 'a lone node\'s data dir: its signing.secret signs the operator token')
    .option('--timeout-ms <ms>', 'deadline of each call to a node or etcd', positiveInt('--timeout-ms'), 5_000)
    .option('--json', 'one JSON object on stdout (errors too: {"error":{"code","message"}})');
}

/** Runs an operator command: opens the target, prints table or JSON, returns the exit code. */
async function runOperator(flags: TargetFlags, work: (target: ClusterTarget) => Promise<CommandOutput>): Promise<number> {
  let target: ClusterTarget | undefined;
  try {
    target = ClusterTarget.open(flags);
    const out = await work(target);
    process.stdout.write(flags.json ? JSON.stringify(out.json) + '\n' : out.text);
    return out.exitCode;
  } catch (err) {
    if (!(err instanceof CtlError)) throw err;
    if (flags.json) process.stdout.write(JSON.stringify({ error: { code: err.code, message: err.message } }) + '\n');
    process.stderr.write(`parleyctl: ${err.message}\n`);
    return err.exitCode;
  } finally {
    target?.close();
  }
}

/** Runs parleyctl; resolves with the process exit code (see the header). */
export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = new Command('parleyctl').description('Operate a Parley cluster and administer its data').showHelpAfterError();
  // Usage errors exit 2, not commander's 1: scripts tell a typo from a failed operation.
  program.exitOverride();
  const users = program.command('users').description('user accounts');
  targetCommand(users, 'show <username>', 'an account: id, username, display name, created, disabled, online')
    .action(async (username: string, flags: TargetFlags) => {
      exitCode = await runOperator(flags, (t) => userShowCommand(t, username));
    });
  targetCommand(users, 'disable <username>', 'refuse the user\'s login and every token on every node, and close their sockets')
    .action(async (username: string, flags: TargetFlags) => {
      exitCode = await runOperator(flags, (t) => userDisableCommand(t, username));
    });
  targetCommand(program, 'nodes', 'live members: node number, version, connections, load')
    .action(async (flags: TargetFlags) => {
      exitCode = await runOperator(flags, (t) => nodesCommand(t));
    });
  targetCommand(program, 'where <kind> <key>', `the node that owns an actor now (KIND: ${PLACED_KINDS.join(' | ')})`)
    .action(async (kind: string, key: string, flags: TargetFlags) => {
      exitCode = await runOperator(flags, (t) => whereCommand(t, kind, key));
    });
  targetCommand(program, 'drain <node>', 'the node leaves placement and hands off its actors and sockets (as SIGTERM does) without exiting')
    .action(async (nodeId: string, flags: TargetFlags) => {
      exitCode = await runOperator(flags, (t) => drainCommand(t, nodeId));
    });
  targetCommand(program, 'stats', 'every node\'s /metrics samples summed by name and labels')
    .action(async (flags: TargetFlags) => {
      exitCode = await runOperator(flags, (t) => statsCommand(t));
    });
  users
    .command('provision')
    .description('create N users in bulk and mint a token for each (JSON lines: user_id, username, token)')
    .requiredOption('--data-dir <dir>', 'the node\'s data directory (holds the signing secret and, by default, the database)')
    .option('--store <url>', 'storage URL (default: sqlite: in the data dir)')
    .option('--secret-file <file>', 'signing secret file, when the node uses one')
    .requiredOption('--count <n>', 'number of users', positiveInt('--count'))
    .option('--prefix <p>', 'username prefix (usernames are prefix + number)', 'bench')
    .option('--start <n>', 'first user number', positiveInt('--start'), 0)
    .requiredOption('--out <file>', 'where the JSON lines go')
    .option('--password <pw>', 'give every user this password (one scrypt hash, reused); default: token-only users')
    .option('--scrypt-log-n <n>', 'scrypt cost for --password', positiveInt('--scrypt-log-n'), 17)
    .option('--token-ttl-s <s>', 'token lifetime, seconds', positiveInt('--token-ttl-s'), 86_400)
    .option('--batch <n>', 'rows per storage write', positiveInt('--batch'), 2_000)
    .option('--in-flight <n>', 'storage writes in flight', positiveInt('--in-flight'), 16)
    .option('--durability <d>', 'fsync | os (SQLite synchronous level while provisioning)', 'os')
    .option('--quiet', 'no progress on stderr')
    .action(async (opts: Record<string, string | number | boolean | undefined>) => {
      const quiet = opts.quiet === true;
      let lastPrint = 0;
      const result = await provisionUsers({
        dataDir: String(opts.dataDir),
        ...(opts.store ? { store: String(opts.store) } : {}),
        ...(opts.secretFile ? { secretFile: String(opts.secretFile) } : {}),
        count: Number(opts.count),
        prefix: String(opts.prefix),
        start: Number(opts.start),
        out: String(opts.out),
        ...(opts.password ? { password: String(opts.password) } : {}),
        scryptLogN: Number(opts.scryptLogN),
        tokenTtlS: Number(opts.tokenTtlS),
        batch: Number(opts.batch),
        inFlight: Number(opts.inFlight),
        durability: opts.durability === 'fsync' ? 'fsync' : 'os',
        onProgress: (done, total, phase) => {
          const now = Date.now();
          if (quiet || now - lastPrint < 500) return;
          lastPrint = now;
          process.stderr.write(`\rparleyctl: ${phase} ${done}/${total}      `);
        },
      });
      if (!quiet) process.stderr.write('\r');
      process.stdout.write(JSON.stringify({ ok: true, ...result, out: String(opts.out) }) + '\n');
    });
  const token = program.command('token').description('session tokens');
  token
    .command('mint')
    .description('print a session token for a user id, signed with the node\'s secret')
    .requiredOption('--data-dir <dir>', 'the node\'s data directory')
    .option('--secret-file <file>', 'signing secret file, when the node uses one')
    .requiredOption('--user-id <id>', 'user id (the token\'s subject)')
    .option('--ttl-s <s>', 'token lifetime, seconds', positiveInt('--ttl-s'), 86_400)
    .action((opts: Record<string, string | number | undefined>) => {
      process.stdout.write(
        mintToken({
          dataDir: String(opts.dataDir),
          ...(opts.secretFile ? { secretFile: String(opts.secretFile) } : {}),
          userId: String(opts.userId),
          ttlS: Number(opts.ttlS),
        }) + '\n',
      );
    });
  const push = program.command('push').description('push notifications');
  push
    .command('dead-letters')
    .description('list push jobs that ran out of attempts (a table, or --json); --retry ID or --retry --all puts them back in the queue, due now')
    .option('--data-dir <dir>', 'the node\'s data directory (where sqlite: keeps the database)', './data')
    .option('--store <url>', 'storage URL (default: sqlite: in the data dir)')
    .option('--redis <url>', 'the nodes\' --redis: their push queue is in Redis, not in the store')
    .option('--json', 'one JSON object: {dead_letters: [...]} (or {retried: [...]})')
    .option('--retry [id]', 'put this dead letter back in the queue (with --all: every one)')
    .option('--all', 'with --retry: every dead letter')
    .action(async (opts: { dataDir: string; store?: string; redis?: string; json?: boolean; retry?: string | boolean; all?: boolean }) => {
      process.stdout.write(await deadLetters(opts));
    });
  program
    .command('schema')
    .description('storage schema')
    .command('apply')
    .description('create or migrate the store\'s schema (idempotent, versioned migrations); prints what it did')
    .requiredOption('--store <url>', 'storage URL, e.g. cassandra://127.0.0.1:9042/parley?replication=network:dc1=3 or sqlite:/path/parley.db')
    .action(async (opts: { store: string }) => {
      // Opening a store applies the migrations it has not applied yet (SQLite: user_version;
      // Cassandra: a migrations table in the keyspace), so applying twice is a no-op.
      const store = await openStore(opts.store, { log: silentLogger() });
      await store.close();
      process.stdout.write(JSON.stringify({ ok: true, store: store.describe }) + '\n');
    });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    // Help and --version are not errors; commander has printed the message already.
    return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? 0 : 2;
  }
  return exitCode;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('parleyctl.ts')) {
  main(process.argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`parleyctl: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(err instanceof CtlError ? err.exitCode : 1);
    },
  );
}
