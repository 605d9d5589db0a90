/**
 * Failed logins throttled per username on a real parleyd (issue 15, security): at the limit (the
 * 20th failure is still answered 401) and past it (the 21st attempt gets 429 RATE_LIMITED with
 * Retry-After, refused before any password work), blocks that grow, the right password working
 * once a block is over, other accounts unaffected, attempts in flight together counted together,
 * and unknown usernames throttled exactly alike. The window is shortened to 4 s
 * (--login-fail-window-ms) so forgetting can be seen; the limit is the default, 20.
 */
import test from 'ava';
import { newUser, startServer, type ServerHandle } from '../support/server.ts';
import { login, metric, sleep, type Answer } from './support.ts';

const LIMIT = 20;
const WINDOW_MS = 4_000;
let server: ServerHandle;

test.before(async () => {
  // A high address allowance: what is tested here is the per-account count, not the per-address one.
  server = await startServer({ flags: { 'login-fail-window-ms': String(WINDOW_MS), 'auth-per-minute': '100000' } });
});

test.after.always(async () => {
  await server?.stop();
});

const retryAfter = (a: Answer): string | null => a.headers.get('retry-after');

async function failTimes(username: string, n: number): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (let i = 0; i < n; i++) answers.push(await login(server, username, `wrong-password-${i}`));
  return answers;
}

test.serial('login throttle - the 20th failure is answered 401, the 21st attempt 429 with Retry-After; blocks grow; the right password works after one; other accounts are unaffected', async (t) => {
  const [victim, other] = [await newUser(server, 'tv'), await newUser(server, 'to')];
  const hashesBefore = await metric(server, 'parley_password_hashes_total');
  const first = await failTimes(victim.username, LIMIT);
  t.deepEqual([...new Set(first.map((a) => `${a.status} ${a.code} ${a.message}`))], ['401 UNAUTHENTICATED wrong username or password'], 'all 20 answered');

  const past = await login(server, victim.username, 'wrong-password-21');
  t.is(past.status, 429);
  t.is(past.code, 'RATE_LIMITED');
  t.is(past.message, 'too many failed logins for this username; retry in 1 s');
  t.is(retryAfter(past), '1', 'Retry-After in seconds');
  const right = await login(server, victim.username, victim.password);
  t.is(right.status, 429, 'during a block even the right password waits (a throttle for everyone, not a lock-out)');
  t.is(await metric(server, 'parley_password_hashes_total'), hashesBefore + LIMIT, 'refused attempts cost no password hashing');
  t.is((await login(server, other.username, other.password)).status, 200, 'another account logs in meanwhile');

  await sleep(1_000);
  t.is((await login(server, victim.username, 'wrong-password-22')).status, 401, 'one attempt after the block');
  const second = await login(server, victim.username, 'wrong-password-23');
  t.is(second.status, 429);
  t.is(retryAfter(second), '2', 'the next block is twice as long');
  await sleep(2_000);
  t.is((await login(server, victim.username, 'wrong-password-24')).status, 401);
  t.is(retryAfter(await login(server, victim.username, 'x-password')), '4', 'and again, up to the window (4 s here, 15 min by default)');
  await sleep(4_000);
  const back = await login(server, victim.username, victim.password);
  t.is(back.status, 200, 'the owner gets in once the block is over');

  // A success forgets the failures: a full 20 again before the next 429.
  const again = await failTimes(victim.username, LIMIT + 1);
  t.deepEqual(again.map((a) => a.status), [...Array<number>(LIMIT).fill(401), 429]);
});

test.serial('login throttle - 40 wrong attempts at once: exactly 20 answered 401 and checked, 20 refused 429 unchecked', async (t) => {
  const victim = await newUser(server, 'tc');
  const hashesBefore = await metric(server, 'parley_password_hashes_total');
  const throttledBefore = await metric(server, 'parley_logins_throttled_total');
  const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => login(server, victim.username, `wrong-password-${i}`)));
  const count = (s: number) => answers.filter((a) => a.status === s).length;
  t.is(count(401), LIMIT);
  t.is(count(429), 40 - LIMIT);
  t.true(answers.filter((a) => a.status === 429).every((a) => Number(retryAfter(a)) >= 1));
  t.is(await metric(server, 'parley_password_hashes_total'), hashesBefore + LIMIT, 'only the admitted 20 were hashed');
  t.is(await metric(server, 'parley_logins_throttled_total'), throttledBefore + 40 - LIMIT);
});

test.serial('login throttle - an unknown username is counted and throttled exactly like a real one; quiet for the window, the count starts over', async (t) => {
  const ghost = `ghost${process.pid}`.slice(0, 32);
  const answers = await failTimes(ghost, LIMIT + 1);
  t.deepEqual(answers.map((a) => a.status), [...Array<number>(LIMIT).fill(401), 429], 'a 429 does not tell that the user does not exist, nor its absence that it does');
  t.is(answers.at(-1)!.message, 'too many failed logins for this username; retry in 1 s');
  t.is(retryAfter(answers.at(-1)!), '1');
  // Blocked 1 s from the 20th failure; forgotten a window after the block ends.
  await sleep(1_000 + WINDOW_MS + 300);
  const fresh = await failTimes(ghost, LIMIT + 1);
  t.deepEqual(fresh.map((a) => a.status), [...Array<number>(LIMIT).fill(401), 429]);
});
