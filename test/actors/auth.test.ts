import test from 'ava';
import { hashPassword, RECOMMENDED_COST, verifyPassword } from '../../actors/auth/password.ts';
import { MAX_TOKEN_TTL_S, TokenSigner } from '../../actors/auth/tokens.ts';
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
  const { token, expiresAtMs } = signer.issue('user-1', 1_000_000);
  t.is(expiresAtMs, 1_060_000);
  t.is(signer.verify(token, 1_000_000)?.sub, 'user-1');
  t.is(other.verify(token, 1_000_000), undefined);
  t.is(signer.verify(token, 1_000_000 + 59_999)?.sub, 'user-1', 'valid until the last millisecond');
  t.is(signer.verify(token, 1_000_000 + 60_000), undefined, 'expired');
  t.is(signer.verify(token.replace('v1.', 'v2.'), 1_000_000), undefined);
  t.is(signer.verify('a.b.c', 1_000_000), undefined);
  t.throws(() => new TokenSigner('short', 60), { message: /at least 32 bytes/ });
});

test('tokens - every issue is a distinct token; a refresh keeps the login (sid) and gets a new token id (jti)', (t) => {
  const signer = new TokenSigner('k'.repeat(32), 60);
  const a = signer.issue('user-1', 1_000_000);
  const b = signer.issue('user-1', 1_000_000);
  t.not(a.token, b.token, 'two logins in the same second differ');
  t.not(a.claims.sid, b.claims.sid);
  const refreshed = signer.issue('user-1', 1_030_000, a.claims.sid);
  t.is(refreshed.claims.sid, a.claims.sid);
  t.not(refreshed.claims.jti, a.claims.jti);
  t.is(refreshed.expiresAtMs, 1_090_000);
  t.deepEqual(signer.verify(refreshed.token, 1_030_000), refreshed.claims);
  t.is(signer.verify(a.token, 1_030_000)?.jti, a.claims.jti, 'the old token stays valid');
});

test('tokens - lifetime: at most 30 days signed or accepted; tokens minted before ids are still accepted, named by their signature', (t) => {
  const signer = new TokenSigner('k'.repeat(32), MAX_TOKEN_TTL_S);
  t.truthy(signer.verify(signer.issue('u', 1_000_000).token, 1_000_000), 'exactly 30 days');
  t.throws(() => new TokenSigner('k'.repeat(32), MAX_TOKEN_TTL_S + 1), { message: /token lifetime must be 1-2592000 s/ });
  t.throws(() => new TokenSigner('k'.repeat(32), 0), { message: /token lifetime/ });
  const tooLong = signer.sign({ sub: 'u', sid: 's', jti: 'j', iat: 1_000, exp: 1_000 + MAX_TOKEN_TTL_S + 1 });
  t.is(signer.verify(tooLong, 1_000_000), undefined, 'a 30 days + 1 s token is refused');
  // The pre-id form: {sub, iat, exp}, signed with the same key.
  const legacy = (signer as unknown as { sign(c: object): string }).sign({ sub: 'old', iat: 1_000, exp: 5_000 });
  const claims = signer.verify(legacy, 2_000_000);
  t.is(claims?.sub, 'old');
  t.is(claims?.sid, `sig:${legacy.split('.')[2]!.slice(0, 22)}`);
  t.is(claims?.jti, claims?.sid);
  const bad = (signer as unknown as { sign(c: object): string }).sign({ sub: 'x', iat: 1_000, exp: 5_000, sid: 7 });
  t.is(signer.verify(bad, 2_000_000), undefined, 'a sid that is not a string is refused');
});

test('auth rate limit - the default allows 300 logins a minute from one address; a configured lower limit answers 429', async (t) => {
  const server = await startServer();
  const limited = await startServer({ flags: { 'auth-per-minute': '5' } });
  try {
    const u = await newUser(server);
    const body = JSON.stringify({ username: u.username, password: u.password });
    // In waves of 10 at once: more logins of one account in flight together than the failed-login
    // limit (20) would be throttled (each counts as a failure until it succeeds; test/security).
    const statuses: number[] = [];
    for (let wave = 0; wave < 30; wave++) {
      statuses.push(...(await Promise.all(Array.from({ length: 10 }, () => fetch(`${server.baseUrl}/v1/sessions`, { method: 'POST', body }).then((r) => r.status)))));
    }
    t.is(statuses.length, 300);
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
