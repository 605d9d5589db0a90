/**
 * The job queue contract (runtime/queue/job-queue.ts), written once and run against each
 * implementation (kv-job-queue.test.ts on a real SQLite file, redis-job-queue.test.ts on a real
 * Redis). Every test opens its own queue name, so tests never see each other's jobs. Several
 * workers are several queue objects on the same backing data, as several nodes are.
 */
import test from 'ava';
import { randomUUID } from 'node:crypto';
import type { DurableJobQueue, JobLease } from '../../runtime/queue/index.ts';

/** Opens a worker on queue `name` (the same backing data for the same name). */
export type OpenQueue = (name: string, options: { leaseMs: number }) => Promise<DurableJobQueue>;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Long enough that nothing lapses by accident on a busy machine. */
const LONG = 60_000;
/** Short enough to wait out in a test. */
const SHORT = 600;

export function runQueueContract(impl: string, open: OpenQueue): void {
  const opened: DurableJobQueue[] = [];
  const queues = async (n: number, leaseMs = LONG): Promise<DurableJobQueue[]> => {
    const name = `q${randomUUID().slice(0, 8)}`;
    const qs = await Promise.all(Array.from({ length: n }, () => open(name, { leaseMs })));
    opened.push(...qs);
    return qs;
  };
  test.after.always(async () => {
    await Promise.allSettled(opened.map((q) => q.close()));
  });

  test(`${impl} queue - a job is claimed only once due, with its latest body; finished, it is gone`, async (t) => {
    const [q] = (await queues(1)) as [DurableJobQueue];
    await q.put({ id: 'a', body: 'first', dueMs: Date.now() + 400 });
    await q.put({ id: 'a', body: 'second', dueMs: Date.now() + 400 });
    t.deepEqual(await q.claim(10), [], 'not due yet');
    t.is(q.depth, 1);
    await sleep(450);
    const [lease, ...more] = await q.claim(10);
    t.is(more.length, 0);
    t.like(lease, { id: 'a', body: 'second', attempts: 0, marks: [] });
    await q.finish(lease!);
    t.deepEqual(await q.claim(10), []);
    t.is(q.depth, 0);
  });

  test(`${impl} queue - put before the first claim moves the due time; cancel removes the job`, async (t) => {
    const [q] = (await queues(1)) as [DurableJobQueue];
    await q.put({ id: 'later', body: 'x', dueMs: Date.now() - 1 });
    await q.put({ id: 'later', body: 'y', dueMs: Date.now() + LONG });
    await q.put({ id: 'gone', body: 'z', dueMs: Date.now() - 1 });
    await q.cancel('gone');
    await q.cancel('never-queued');
    t.deepEqual(await q.claim(10), []);
  });

  test(`${impl} queue - jobs due at once, several workers claiming together: each job held by exactly one`, async (t) => {
    const ws = await queues(3);
    const ids = Array.from({ length: 60 }, (_, i) => `job-${i}`);
    await Promise.all(ids.map((id) => ws[0]!.put({ id, body: id, dueMs: Date.now() - 1 })));
    const held = new Map<string, number>();
    for (let round = 0; round < 10 && held.size < ids.length; round++) {
      const got = await Promise.all(ws.map((w) => w.claim(8)));
      for (const leases of got) for (const l of leases) held.set(l.id, (held.get(l.id) ?? 0) + 1);
    }
    t.is(held.size, ids.length, 'every job claimed');
    t.deepEqual([...held.values()].filter((n) => n !== 1), [], 'none by two workers');
    t.true(ws[0]!.depth <= ids.length);
  });

  test(`${impl} queue - a failed attempt waits until its retry time, counted, with its error and the marks`, async (t) => {
    const [a, b] = (await queues(2)) as [DurableJobQueue, DurableJobQueue];
    await a.put({ id: 'r', body: 'retry me', dueMs: Date.now() - 1 });
    const [first] = await a.claim(1);
    await a.mark(first!, 'target-1');
    await a.mark(first!, 'target-1');
    await a.defer(first!, Date.now() + 400, 'receiver answered 503');
    t.deepEqual(await b.claim(1), [], 'not before the retry time');
    await sleep(450);
    const [second] = await b.claim(1);
    t.like(second, { id: 'r', body: 'retry me', attempts: 1, lastError: 'receiver answered 503' });
    t.deepEqual(second!.marks, ['target-1']);
    // A wait that is not a failure is not an attempt.
    await b.defer(second!, Date.now() - 1);
    const [third] = await a.claim(1);
    t.is(third!.attempts, 1);
    await a.finish(third!);
  });

  test(`${impl} queue - a holder that dies: its job is taken over once the lease lapses, not before, with what it recorded`, async (t) => {
    const [dying, other] = (await queues(2, SHORT)) as [DurableJobQueue, DurableJobQueue];
    await dying.put({ id: 'k', body: 'pending', dueMs: Date.now() - 1 });
    const [lease] = await dying.claim(1);
    await dying.mark(lease!, 'webhook');
    // The holder now stops answering (as a killed node does): it never ends the lease.
    t.deepEqual(await other.claim(1), [], 'held while the lease runs');
    let taken: JobLease[] = [];
    for (const end = Date.now() + 10_000; taken.length === 0 && Date.now() < end; ) {
      await sleep(100);
      taken = await other.claim(1);
    }
    t.is(taken.length, 1, 'taken over');
    t.like(taken[0], { id: 'k', body: 'pending' });
    t.deepEqual(taken[0]!.marks, ['webhook']);
    await other.finish(taken[0]!);
    t.deepEqual(await dying.claim(1), []);
  });

  test(`${impl} queue - a holder whose lease lapsed and was taken over cannot move the job any more`, async (t) => {
    const [slow, fast, third] = (await queues(3, SHORT)) as [DurableJobQueue, DurableJobQueue, DurableJobQueue];
    await slow.put({ id: 'l', body: 'b', dueMs: Date.now() - 1 });
    const [old] = await slow.claim(1);
    let current: JobLease[] = [];
    for (const end = Date.now() + 10_000; current.length === 0 && Date.now() < end; ) {
      await sleep(100);
      current = await fast.claim(1);
    }
    t.is(current.length, 1);
    // The slow one wakes up and asks for an immediate retry: the job stays with its new holder.
    await slow.defer(old!, Date.now() - 1, 'late');
    t.deepEqual(await third.claim(1), [], 'still held by the new holder');
    await fast.finish(current[0]!);
    t.deepEqual(await third.claim(1), []);
  });

  test(`${impl} queue - buried jobs are listed with their attempts and marks, and revived once under a new id`, async (t) => {
    const [q, operator] = (await queues(2)) as [DurableJobQueue, DurableJobQueue];
    await q.put({ id: 'd1', body: 'doomed', dueMs: Date.now() - 1 });
    const [l1] = await q.claim(1);
    await q.defer(l1!, Date.now() - 1, 'err 1');
    const [l2] = await q.claim(1);
    await q.mark(l2!, 'told');
    await q.bury(l2!, 'err 2');
    t.deepEqual(await q.claim(1), [], 'a dead job is not claimed');
    const dead = await operator.dead();
    t.is(dead.length, 1);
    t.like(dead[0], { id: 'd1', body: 'doomed', attempts: 2, lastError: 'err 2' });
    t.deepEqual(dead[0]!.marks, ['told']);
    t.true(Math.abs(dead[0]!.deadAtMs - Date.now()) < 10_000);
    t.false(await operator.revive('nope', { id: 'x', body: 'x', dueMs: 0 }));
    t.true(await operator.revive('d1', { id: 'd1:r1', body: 'again', dueMs: Date.now() - 1 }));
    t.false(await operator.revive('d1', { id: 'd1:r2', body: 'again', dueMs: Date.now() - 1 }), 'once');
    t.deepEqual(await operator.dead(), []);
    const [back] = await q.claim(5);
    t.like(back, { id: 'd1:r1', body: 'again', attempts: 0 });
    t.deepEqual(back!.marks, ['told'], 'work done stays done');
    await q.finish(back!);
    t.deepEqual(await q.claim(5), []);
  });

  test(`${impl} queue - a job cancelled while held is finished by its holder without trouble; a late put queues it again`, async (t) => {
    const [q] = (await queues(1)) as [DurableJobQueue];
    await q.put({ id: 'c', body: 'v1', dueMs: Date.now() - 1 });
    const [l] = await q.claim(1);
    await q.cancel('c');
    await q.finish(l!);
    t.deepEqual(await q.claim(1), []);
    await q.put({ id: 'c', body: 'v2', dueMs: Date.now() - 1 });
    const [again] = await q.claim(1);
    t.like(again, { id: 'c', body: 'v2', attempts: 0 });
    await q.finish(again!);
  });

  test(`${impl} queue - claim takes at most max, the rest stay for the next round`, async (t) => {
    const [q] = (await queues(1)) as [DurableJobQueue];
    await Promise.all(Array.from({ length: 5 }, (_, i) => q.put({ id: `m${i}`, body: '', dueMs: Date.now() - 1 })));
    const first = await q.claim(3);
    t.is(first.length, 3);
    const second = await q.claim(3);
    t.is(second.length, 2);
    t.deepEqual(new Set([...first, ...second].map((l) => l.id)).size, 5);
    for (const l of [...first, ...second]) await q.finish(l);
  });
}
