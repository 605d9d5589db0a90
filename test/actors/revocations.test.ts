/**
 * The revocation set on a real SQLite store: what a logout writes, what a starting node loads
 * (every logout whose tokens may still be valid, up to the 30-day lifetime ahead, and nothing
 * past its until_ms), and that a second instance on the same store learns a logout by polling.
 * Serial: the poll test bounds how soon a logout is seen (1 s), which tests sharing the two cores
 * with it would measure instead.
 */
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Revocations } from '../../actors/auth/revocations.ts';
import { MAX_TOKEN_TTL_S, TokenSigner } from '../../actors/auth/tokens.ts';
import { Tables } from '../../actors/tables.ts';
import { openStore, silentLogger, type Store } from '../../runtime/index.ts';

const DAY_MS = 86_400_000;

async function withStore(fn: (store: Store) => Promise<void>): Promise<void> {
  const store = await openStore('sqlite:', { log: silentLogger(), dataDir: mkdtempSync(join(tmpdir(), 'parley-revocations-')), durability: 'os' });
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

const put = (store: Store, sid: string, untilMs: number) =>
  store.kv.write([{ op: 'put', table: Tables.revokedSession, partition: String(Math.floor(untilMs / DAY_MS)), key: sid, value: JSON.stringify({ sub: 'u', until_ms: untilMs, at_ms: Date.now() }) }]);

test.serial('revocations - a logout is kept until its last token (or a refresh racing it) has expired, and closes the sessions tracked for it', async (t) => {
  await withStore(async (store) => {
    const closed: string[] = [];
    const r = new Revocations({ kv: store.kv, log: silentLogger(), closeSession: (k) => closed.push(k) });
    await r.start();
    try {
      const signer = new TokenSigner('k'.repeat(32), 3_600);
      const { claims } = signer.issue('u');
      r.track(claims.sid, 'n1.1');
      r.track(claims.sid, 'n1.2');
      r.track('other', 'n1.3');
      r.untrack(claims.sid, 'n1.2');
      const before = Date.now();
      await r.revoke(claims, 3_600);
      t.true(r.isRevoked(claims.sid));
      t.false(r.isRevoked('other'));
      t.deepEqual(closed, ['n1.1']);
      // Partitioned by the day of until_ms (the next day if the clock crossed midnight meanwhile).
      const untilDay = Math.floor((before + 3_600_000 + 60_000) / DAY_MS);
      const rows = await Promise.all([untilDay, untilDay + 1].map((d) => store.kv.get(Tables.revokedSession, String(d), claims.sid)));
      const row = JSON.parse(rows.find((x) => x !== undefined)!) as { until_ms: number };
      t.true(row.until_ms >= before + 3_600_000 + 60_000 && row.until_ms <= Date.now() + 3_600_000 + 60_000, 'until: a full refresh lifetime plus the race margin');
    } finally {
      r.stop();
    }
  });
});

test.serial('revocations - a starting node loads every logout still in force, 30 days ahead included, and none already past', async (t) => {
  await withStore(async (store) => {
    const now = Date.now();
    await put(store, 'today', now + 60_000);
    await put(store, 'at-the-limit', now + MAX_TOKEN_TTL_S * 1000 + 60_000);
    await put(store, 'past', now - 1);
    const r = new Revocations({ kv: store.kv, log: silentLogger(), closeSession: () => undefined });
    await r.start();
    r.stop();
    t.true(r.isRevoked('today'));
    t.true(r.isRevoked('at-the-limit'));
    t.false(r.isRevoked('past'));
    t.is(r.size, 2);
  });
});

test.serial('revocations - another instance on the same store learns a logout within a poll and closes its own sessions of it', async (t) => {
  await withStore(async (store) => {
    const closedOnB: string[] = [];
    const a = new Revocations({ kv: store.kv, log: silentLogger(), closeSession: () => undefined });
    const b = new Revocations({ kv: store.kv, log: silentLogger(), closeSession: (k) => closedOnB.push(k), pollMs: 100 });
    await Promise.all([a.start(), b.start()]);
    try {
      const { claims } = new TokenSigner('k'.repeat(32), 60).issue('u');
      b.track(claims.sid, 'n2.7');
      const at = Date.now();
      await a.revoke(claims, 60);
      for (let i = 0; i < 50 && !b.isRevoked(claims.sid); i++) await new Promise((r) => setTimeout(r, 20));
      t.true(b.isRevoked(claims.sid), 'seen through the feed');
      t.true(Date.now() - at < 1_000);
      t.deepEqual(closedOnB, ['n2.7']);
    } finally {
      a.stop();
      b.stop();
    }
  });
});

test.serial('revocations - a disabled user: every login of theirs is refused and their sessions closed on another instance; others untouched', async (t) => {
  await withStore(async (store) => {
    const closedOnB: string[] = [];
    const a = new Revocations({ kv: store.kv, log: silentLogger(), closeSession: () => undefined });
    const b = new Revocations({ kv: store.kv, log: silentLogger(), closeSession: (k) => closedOnB.push(k), pollMs: 100 });
    await Promise.all([a.start(), b.start()]);
    try {
      const signer = new TokenSigner('k'.repeat(32), 60);
      const [one, two, other] = [signer.issue('u').claims, signer.issue('u').claims, signer.issue('v').claims];
      b.track(one.sid, 'n2.1', one.sub);
      b.track(two.sid, 'n2.2', two.sub);
      b.track(other.sid, 'n2.3', other.sub);
      b.untrack(two.sid, 'n2.2', two.sub);
      await a.revokeUser('u');
      t.true(a.refuses(one) && a.refuses(two), 'refused at once where it was written');
      for (let i = 0; i < 50 && !b.refuses(one); i++) await new Promise((r) => setTimeout(r, 20));
      t.true(b.refuses(one) && b.refuses(two), 'seen through the feed');
      t.false(b.refuses(other));
      t.false(b.isRevoked(one.sid), 'no login was logged out: the user is refused');
      t.deepEqual(closedOnB, ['n2.1']);
      // A node starting later loads it with the logouts.
      const c = new Revocations({ kv: store.kv, log: silentLogger(), closeSession: () => undefined });
      await c.start();
      t.true(c.refuses(signer.issue('u').claims));
      c.stop();
    } finally {
      a.stop();
      b.stop();
    }
  });
});
