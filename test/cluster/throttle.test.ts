import test from 'ava';
import { Throttle, type Scheduler } from '../../runtime/cluster/throttle.ts';

function fakeTime() {
  let now = 0;
  const timers: { at: number; fn: () => void; live: boolean }[] = [];
  const schedule: Scheduler = (fn, ms) => {
    const timer = { at: now + ms, fn, live: true };
    timers.push(timer);
    return () => (timer.live = false);
  };
  const advance = (ms: number) => {
    now += ms;
    for (const timer of timers.filter((x) => x.live && x.at <= now)) {
      timer.live = false;
      timer.fn();
    }
  };
  return { now: () => now, schedule, advance };
}

test('runs at once, then at most once per interval, and once more after the last request', (t) => {
  const time = fakeTime();
  const runs: number[] = [];
  const th = new Throttle(1_000, () => runs.push(time.now()), time.now, time.schedule);
  th.request();
  t.deepEqual(runs, [0]);
  for (let i = 0; i < 10; i++) {
    time.advance(50);
    th.request();
  }
  t.deepEqual(runs, [0], 'burst is held back');
  time.advance(500);
  t.deepEqual(runs, [0, 1_000], 'trailing run at the interval boundary');
  time.advance(5_000);
  t.deepEqual(runs, [0, 1_000], 'nothing without a request');
  th.request();
  t.deepEqual(runs, [0, 1_000, 6_000]);
});

test('cancel drops the pending run', (t) => {
  const time = fakeTime();
  let runs = 0;
  const th = new Throttle(1_000, () => runs++, time.now, time.schedule);
  th.request();
  th.request();
  th.cancel();
  time.advance(2_000);
  t.is(runs, 1);
});
