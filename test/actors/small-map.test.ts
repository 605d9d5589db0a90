import test from 'ava';
import { SmallMap } from '../../actors/user/small-map.ts';

/** What a SmallMap holds, checked against a Map given the same operations. */
function same(t: import('ava').ExecutionContext, m: SmallMap<string, number>, ref: Map<string, number>): void {
  t.is(m.size, ref.size);
  t.deepEqual([...m], [...ref]);
  for (const [k, v] of ref) {
    t.is(m.get(k), v);
    t.true(m.has(k));
  }
  t.is(m.get('absent'), undefined);
  t.false(m.has('absent'));
}

test('small map - behaves as a Map at 8 entries (arrays) and at 9 (a Map), through deletes and overwrites', (t) => {
  for (const n of [8, 9]) {
    const m = new SmallMap<string, number>();
    const ref = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      m.set(`k${i}`, i);
      ref.set(`k${i}`, i);
    }
    same(t, m, ref);
    t.is((m as unknown as { big?: Map<string, number> }).big !== undefined, n > 8, `${n} entries`);
    m.set('k3', 33);
    ref.set('k3', 33);
    t.is(m.delete('k0'), ref.delete('k0'));
    t.is(m.delete('k0'), ref.delete('k0'));
    m.set('k0', 100); // re-added: goes last, as in a Map
    ref.set('k0', 100);
    same(t, m, ref);
    m.clear();
    ref.clear();
    same(t, m, ref);
  }
});

test('small map - entries deleted while iterating are not skipped past', (t) => {
  const m = new SmallMap<string, number>();
  for (let i = 0; i < 5; i++) m.set(`k${i}`, i);
  const seen: string[] = [];
  for (const [k] of m) {
    seen.push(k);
    m.delete(k);
  }
  t.deepEqual(seen, ['k0', 'k1', 'k2', 'k3', 'k4']);
  t.is(m.size, 0);
});
