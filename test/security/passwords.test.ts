/**
 * Passwords on a real parleyd at the production cost (issue 15, security):
 * - stored at OWASP's cost for scrypt, N=2^17, r=8, p=1 (the default of scrypt_log_n), checked on
 *   the row in the node's SQLite file by deriving the key again with those parameters;
 * - an unknown username and a wrong password answer alike: the same status, error code and
 *   message, and times within a factor of 3 (10 logins each, interleaved; medians compared).
 */
import { scryptSync } from 'node:crypto';
import { join } from 'node:path';
import test from 'ava';
import Database from 'better-sqlite3';
import { SETTINGS } from '../../config/settings.ts';
import { percentiles } from '../cluster-e2e/support.ts';
import { newUser, startServer, type ServerHandle } from '../support/server.ts';
import { login, type Answer } from './support.ts';

let server: ServerHandle;

test.before(async () => {
  // The production cost (the test default is 2^10 for speed).
  server = await startServer({ flags: { 'scrypt-log-n': '17' } });
});

test.after.always(async () => {
  await server?.stop();
});

test('passwords - stored with scrypt N=2^17, r=8, p=1 (OWASP), the default cost', async (t) => {
  t.is(SETTINGS.find((s) => s.key === 'scrypt_log_n')?.default, 17, 'the default of --scrypt-log-n');
  const u = await newUser(server, 'pw');
  const db = new Database(join(server.dataDir, 'parley.db'), { readonly: true });
  let stored: string;
  try {
    const row = db.prepare('SELECT v FROM kv WHERE tbl = ? AND part = ? AND k = ?').get('user', u.userId, 'profile') as { v: string } | undefined;
    stored = (JSON.parse(row!.v) as { password_hash: string }).password_hash;
  } finally {
    db.close();
  }
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(stored);
  t.truthy(m, stored);
  const [logN, r, p, salt, key] = [Number(m![1]), Number(m![2]), Number(m![3]), Buffer.from(m![4]!, 'base64'), Buffer.from(m![5]!, 'base64')];
  t.deepEqual({ logN, r, p }, { logN: 17, r: 8, p: 1 });
  t.is(salt.length, 16, '128-bit random salt');
  t.is(key.length, 32);
  const again = scryptSync(u.password, salt, 32, { N: 2 ** 17, r: 8, p: 1, maxmem: 256 * 2 ** 17 * 8 });
  t.true(again.equals(key), 'the stored key is exactly scrypt(password, salt) at N=2^17, r=8, p=1');
});

test('passwords - an unknown username and a wrong password answer alike: status, code, message, and time within 3x', async (t) => {
  const u = await newUser(server, 'al');
  const unknown = `nobody${process.pid}`.slice(0, 32);
  const wrong: Answer[] = [];
  const missing: Answer[] = [];
  // Interleaved, so load on the shared machine falls on both alike; 10 each stays under the
  // failed-login limit (20) of either username.
  for (let i = 0; i < 10; i++) {
    wrong.push(await login(server, u.username, `not-the-password-${i}`));
    missing.push(await login(server, unknown, `not-the-password-${i}`));
  }
  const invalid = await login(server, 'Not A Valid Name!', 'not-the-password');
  const shape = (a: Answer) => `${a.status} ${a.code} ${a.message}`;
  t.deepEqual([...new Set([...wrong, ...missing, invalid].map(shape))], ['401 UNAUTHENTICATED wrong username or password']);
  const w = percentiles(wrong.map((a) => a.ms));
  const m = percentiles(missing.map((a) => a.ms));
  t.log(`login time, ms: wrong password p50 ${w.p50.toFixed(1)} (min ${Math.min(...wrong.map((a) => a.ms)).toFixed(1)}, max ${w.max.toFixed(1)}); unknown user p50 ${m.p50.toFixed(1)} (min ${Math.min(...missing.map((a) => a.ms)).toFixed(1)}, max ${m.max.toFixed(1)}); invalid name ${invalid.ms.toFixed(1)}`);
  const ratio = Math.max(w.p50, m.p50) / Math.min(w.p50, m.p50);
  t.true(ratio <= 3, `median times differ ${ratio.toFixed(2)}x`);
  t.true(Math.min(w.p50, m.p50) > 20, 'both pay for a real derivation at N=2^17 (tens of ms at least)');
});
