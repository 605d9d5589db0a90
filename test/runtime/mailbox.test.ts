import test from 'ava';
import { Mailbox } from '../../runtime/actor/mailbox.ts';

/** The mailbox's internals, read only to check that consumed slots are reused. */
function internals(mailbox: Mailbox<unknown>): { head: number; ring: unknown[] } {
  return mailbox as unknown as { head: number; ring: unknown[] };
}

/** A small deterministic PRNG so a failure reproduces. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32;
  };
}

test('mailbox - keeps FIFO order across wrap-arounds and growth with 100k interleaved pushes and polls', (t) => {
  const mailbox = new Mailbox<number>(Number.MAX_SAFE_INTEGER);
  const random = lcg(42);
  const TOTAL = 100_000;
  let pushed = 0;
  let polled = 0;
  let wraps = 0;
  let maxLive = 0;
  let maxBacking = 0;
  let orderBroken: string | undefined;
  let lastHead = 0;

  while (polled < TOTAL) {
    // Bursts of pushes and polls of varying size, so the queue grows past the compaction
    // threshold and drains again many times, with items still queued when it compacts.
    const pushes = Math.min(TOTAL - pushed, Math.floor(random() * 3_000));
    for (let i = 0; i < pushes; i++) if (!mailbox.offer(pushed++)) orderBroken ??= 'offer refused';
    maxLive = Math.max(maxLive, mailbox.size);
    const polls = Math.floor(random() * 3_000);
    for (let i = 0; i < polls && polled < pushed; i++) {
      const item = mailbox.poll();
      if (item !== polled && orderBroken === undefined) orderBroken = `expected ${polled}, got ${String(item)}`;
      polled++;
      const { head, ring } = internals(mailbox);
      if (head < lastHead && mailbox.size > 0) wraps++;
      lastHead = head;
      maxBacking = Math.max(maxBacking, ring.length);
    }
    if (pushed === TOTAL && mailbox.size === 0) break;
  }

  t.is(orderBroken, undefined);
  t.is(polled, TOTAL);
  t.is(mailbox.size, 0);
  t.is(mailbox.poll(), undefined);
  t.true(wraps > 5, `only ${wraps} wrap-arounds with live items happened`);
  // Consumed slots are reused: the ring is never more than twice the most items ever queued.
  t.true(maxBacking <= 2 * Math.max(8, maxLive), `ring grew to ${maxBacking} for at most ${maxLive} items`);
});

test('mailbox - a strictly alternating push/poll stream never grows the backing array', (t) => {
  const mailbox = new Mailbox<number>(16);
  mailbox.offer(-1);
  for (let i = 0; i < 100_000; i++) {
    t.true(mailbox.offer(i));
    const expected = i - 1;
    const got = mailbox.poll();
    if (got !== expected) {
      t.fail(`expected ${expected}, got ${String(got)}`);
      return;
    }
    if (internals(mailbox).ring.length > 8) {
      t.fail(`ring grew to ${internals(mailbox).ring.length}`);
      return;
    }
  }
  t.is(mailbox.size, 1);
  t.is(mailbox.poll(), 99_999);
});

test('mailbox - refuses offers beyond capacity and accepts again once polled', (t) => {
  const mailbox = new Mailbox<string>(3);
  t.is(mailbox.capacity, 3);
  t.true(mailbox.offer('a'));
  t.true(mailbox.offer('b'));
  t.true(mailbox.offer('c'));
  t.false(mailbox.offer('d'));
  t.false(mailbox.offer('e'));
  t.is(mailbox.size, 3);

  t.is(mailbox.poll(), 'a');
  t.true(mailbox.offer('f'));
  t.false(mailbox.offer('g'));
  t.deepEqual(mailbox.drain(), ['b', 'c', 'f']);
  t.is(mailbox.size, 0);

  // pushUnbounded (the owner's timers) goes past the bound; offers stay refused until below it.
  t.true(mailbox.offer('h'));
  t.true(mailbox.offer('i'));
  t.true(mailbox.offer('j'));
  mailbox.pushUnbounded('timer');
  t.is(mailbox.size, 4);
  t.false(mailbox.offer('k'));
  t.is(mailbox.poll(), 'h');
  t.false(mailbox.offer('l'), 'still at capacity');
  t.is(mailbox.poll(), 'i');
  t.true(mailbox.offer('m'));
  t.deepEqual(mailbox.drain(), ['j', 'timer', 'm']);
});

test('mailbox - a zero-capacity mailbox refuses everything', (t) => {
  const mailbox = new Mailbox<number>(0);
  t.false(mailbox.offer(1));
  t.is(mailbox.size, 0);
  t.is(mailbox.poll(), undefined);
});

test('mailbox - prepend puts items before the queued ones, in their order', (t) => {
  const mailbox = new Mailbox<number>(10);
  // Into an empty mailbox.
  mailbox.prepend([1, 2]);
  t.is(mailbox.size, 2);
  t.deepEqual(mailbox.drain(), [1, 2]);

  // Before queued items, after some were already polled (the head has moved).
  for (const n of [10, 11, 12, 13]) mailbox.offer(n);
  t.is(mailbox.poll(), 10);
  t.is(mailbox.poll(), 11);
  mailbox.prepend([7, 8, 9]);
  t.is(mailbox.size, 5);
  mailbox.offer(14);
  const out: number[] = [];
  for (let n = mailbox.poll(); n !== undefined; n = mailbox.poll()) out.push(n);
  t.deepEqual(out, [7, 8, 9, 12, 13, 14]);

  // Nothing to prepend changes nothing.
  mailbox.offer(1);
  mailbox.prepend([]);
  t.deepEqual(mailbox.drain(), [1]);
});

test('mailbox - prepend may exceed capacity (messages already accepted are never dropped)', (t) => {
  const mailbox = new Mailbox<number>(3);
  mailbox.offer(4);
  mailbox.offer(5);
  mailbox.prepend([1, 2, 3]);
  t.is(mailbox.size, 5);
  t.false(mailbox.offer(6));
  t.deepEqual(mailbox.drain(), [1, 2, 3, 4, 5]);
  t.true(mailbox.offer(6));
});

test('mailbox - prepend after a wrap-around keeps FIFO order', (t) => {
  const mailbox = new Mailbox<number>(100_000);
  for (let i = 0; i < 5_000; i++) mailbox.offer(i);
  const polled = Array.from({ length: 3_000 }, () => mailbox.poll());
  t.deepEqual(polled, Array.from({ length: 3_000 }, (_, i) => i));
  for (let i = 5_000; i < 7_000; i++) mailbox.offer(i);
  t.true(internals(mailbox).head > 0, 'expected the head to have moved');
  mailbox.prepend([-3, -2, -1]);
  for (let i = 7_000; i < 7_010; i++) mailbox.offer(i);
  const rest = mailbox.drain();
  t.deepEqual(rest, [-3, -2, -1, ...Array.from({ length: 4_010 }, (_, i) => 3_000 + i)]);
});
