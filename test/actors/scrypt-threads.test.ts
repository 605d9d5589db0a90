import { readdirSync, readFileSync } from 'node:fs';
import test from 'ava';
import { deriveOnPool, hashPassword, verifyPassword } from '../../actors/auth/password.ts';
import { ScryptThreads } from '../../actors/auth/scrypt-threads.ts';

/** The nice value of a thread of this process (field 19 of /proc/self/task/TID/stat). */
function niceOf(tid: string): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}
const threadNiceness = (): number[] => readdirSync('/proc/self/task').map(niceOf);

test('scrypt threads - derive the same keys as the pool, several at once, on threads at nice 10', async (t) => {
  const threads = new ScryptThreads(2);
  try {
    const cost = { logN: 12, r: 8, p: 1 };
    const salt = Buffer.from('0123456789abcdef');
    const keys = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((pw) => threads.derive(`password-${pw}`, salt, cost)));
    const expected = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((pw) => deriveOnPool(`password-${pw}`, salt, cost)));
    t.deepEqual(keys.map((k) => k.toString('hex')), expected.map((k) => k.toString('hex')));
    const stored = await hashPassword('correct horse', cost, threads.derive);
    t.true(await verifyPassword('correct horse', stored, threads.derive));
    t.true(await verifyPassword('correct horse', stored), 'the pool verifies what the threads hashed');
    t.false(await verifyPassword('wrong horse', stored, threads.derive));
    t.is(threadNiceness().filter((n) => n === 10).length, 2, 'two threads run at a low priority');
    t.is(niceOf(String(process.pid)), 0, 'the main thread keeps its priority');
  } finally {
    await threads.close();
  }
});
