import test from 'ava';
import { hashPassword, RECOMMENDED_COST, verifyPassword } from '../../actors/auth/password.ts';
import { TokenSigner } from '../../actors/auth/tokens.ts';
import { newUser, startServer } from '../support/server.ts';

test('password - the default cost is scrypt N=2^17, r=8, p=1 and verifies only the right password', async (t) => {
  t.deepEqual(RECOMMENDED_COST, { logN: 17, r: 8, p: 1 });
  const stored = await hashPassword('correct horse battery');
  t.regex(stored, /^scrypt\$17\$8\$1\$/);
  t.true(await verifyPassword('correct horse battery', stored));
  t.false(await verifyPassword('correct horse battery!', stored));
  t.not(await hashPassword('correct horse battery'), stored, 'salted');
});

test('tokens - verify without a database; tampered, foreign-key and expired tokens are refused', (t) => {
  const signer = new TokenSigner('k'.repeat(32), 60);
  const other = new TokenSigner('x'.repeat(32), 60);
  const token = signer.issue('user-1', 1_000_000);
  t.is(signer.verify(token, 1_000_000)?.sub, 'user-1');
  t.is(other.verify(token, 1_000_000), undefined);
  t.is(signer.verify(token, 1_000_000 + 61_000), undefined, 'expired');
  t.is(signer.verify(token.replace('v1.', 'v2.'), 1_000_000), undefined);
  t.is(signer.verify('a.b.c', 1_000_000), undefined);
  t.throws(() => new TokenSigner('short', 60), { message: /at least 32 bytes/ });
});

test('auth rate limit - the default allows 300 logins a minute from one address; a configured lower limit answers 429', async (t) => {
  const server = await startServer();
  const limited = await startServer({ flags: { 'auth-per-minute': '5' } });
  try {
    const u = await newUser(server);
    const body = JSON.stringify({ username: u.username, password: u.password });
    const statuses = await Promise.all(
      Array.from({ length: 300 }, () => fetch(`${server.baseUrl}/v1/sessions`, { method: 'POST', body }).then((r) => r.status)),
    );
    t.deepEqual([...new Set(statuses)], [200]);
    const v = await newUser(limited); // signup + login: 2 of 5
    const body2 = JSON.stringify({ username: v.username, password: v.password });
    const more = [];
    for (let i = 0; i < 4; i++) more.push(await fetch(`${limited.baseUrl}/v1/sessions`, { method: 'POST', body: body2 }).then((r) => r.status));
    t.deepEqual(more, [200, 200, 200, 429]);
  } finally {
    await Promise.all([server.stop(), limited.stop()]);
  }
});
