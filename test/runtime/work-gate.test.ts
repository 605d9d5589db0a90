import test from 'ava';
import { isCoded } from '../../runtime/errors.ts';
import { WorkGate } from '../../runtime/limits/work-gate.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

test('work gate - at most `concurrency` jobs run at once, in arrival order', async (t) => {
  const gate = new WorkGate({ concurrency: 2, maxWaitMs: 60_000, maxWaiting: 100, what: 'jobs' });
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      gate.run(async () => {
        running++;
        peak = Math.max(peak, running);
        order.push(i);
        await sleep(5);
        running--;
      }),
    ),
  );
  t.is(peak, 2);
  t.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.is(gate.queued, 0);
});

test('work gate - refuses with OVERLOADED at the waiting bound and when the wait would be too long', async (t) => {
  const bounded = new WorkGate({ concurrency: 1, maxWaitMs: 60_000, maxWaiting: 3, what: 'jobs' });
  const jobs = Array.from({ length: 5 }, () => bounded.run(() => sleep(20)).then(() => 'ok', (e: unknown) => (isCoded(e) ? e.code : 'other')));
  t.deepEqual(await Promise.all(jobs), ['ok', 'ok', 'ok', 'ok', 'OVERLOADED'], '1 running + 3 waiting (at the bound), the 5th past it');

  const timed = new WorkGate({ concurrency: 1, maxWaitMs: 50, maxWaiting: 100, what: 'password checks' });
  await timed.run(() => sleep(20)); // teaches it a job takes ~20 ms
  const more = Array.from({ length: 6 }, () => timed.run(() => sleep(20)).then(() => 'ok', (e: unknown) => (isCoded(e) ? `${e.code}: ${e.message}` : 'other')));
  const results = await Promise.all(more);
  t.deepEqual(results.slice(0, 3), ['ok', 'ok', 'ok'], 'one running, two waiting ~40 ms: within 50 ms');
  t.true(results.slice(3).every((r) => r === 'OVERLOADED: too many password checks queued on this node; retry shortly'), results.join());
});
