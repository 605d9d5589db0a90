import test from 'ava';
import { HashRing, hashString64, ownerOf } from '../../runtime/cluster/hash-ring.ts';

const IDENTITY_COUNT = 10_000;
const identities = Array.from({ length: IDENTITY_COUNT }, (_, i) => `kind-${i % 7}/key-${i * 7919}`);

function nodes(count: number, tag = 'n'): string[] {
  return Array.from({ length: count }, (_, i) => `${tag}-${i}-${(i * 2654435761) >>> 0}`);
}

function placement(nodeIds: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const id of identities) out.set(id, ownerOf(id, nodeIds)!);
  return out;
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = items.slice();
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

test('no members owns nothing', (t) => {
  t.is(ownerOf('a', []), undefined);
  t.is(new HashRing([]).ownerOf('a'), undefined);
});

test('a single member owns everything', (t) => {
  t.is(ownerOf('anything', ['only']), 'only');
});

test('hash is stable and distinguishes near-identical strings', (t) => {
  t.deepEqual(hashString64('abc'), hashString64('abc'));
  t.notDeepEqual(hashString64('a'), hashString64('a\u0000'));
  t.notDeepEqual(hashString64('ab'), hashString64('ba'));
  t.notDeepEqual(hashString64(''), hashString64('\u0000'));
});

test('same owner on every call and for every order of the member list', (t) => {
  const members = nodes(10);
  const reference = placement(members);
  for (let seed = 1; seed <= 5; seed++) {
    const order = shuffled(members, seed);
    const ring = new HashRing(order);
    for (const id of identities) {
      t.is(ownerOf(id, order), reference.get(id));
      t.is(ring.ownerOf(id), reference.get(id));
    }
  }
  // Duplicates in the list change nothing.
  t.is(ownerOf(identities[0]!, [...members, ...members]), reference.get(identities[0]!));
});

for (const n of [3, 4, 5, 10]) {
  test(`adding one node to ${n} moves about 1/${n + 1}, all to the new node`, (t) => {
    const before = nodes(n);
    const added = 'joiner-xyz';
    const after = [...before, added];
    const p0 = placement(before);
    const p1 = placement(after);
    let moved = 0;
    for (const id of identities) {
      if (p0.get(id) !== p1.get(id)) {
        moved++;
        t.is(p1.get(id), added, 'moved identities only go to the added node');
      }
    }
    const fraction = moved / IDENTITY_COUNT;
    t.log(`N=${n}+1 moved ${(fraction * 100).toFixed(2)}% (ideal ${(100 / (n + 1)).toFixed(2)}%)`);
    t.true(fraction >= 0.5 / n && fraction <= 1.5 / n, `moved fraction ${fraction}`);
  });

  test(`removing one node of ${n} moves about 1/${n}, only from the removed node`, (t) => {
    const before = nodes(n);
    const removed = before[Math.floor(n / 2)]!;
    const after = before.filter((id) => id !== removed);
    const p0 = placement(before);
    const p1 = placement(after);
    let moved = 0;
    for (const id of identities) {
      if (p0.get(id) !== p1.get(id)) {
        moved++;
        t.is(p0.get(id), removed, 'only identities of the removed node move');
      }
    }
    const fraction = moved / IDENTITY_COUNT;
    t.log(`N=${n}-1 moved ${(fraction * 100).toFixed(2)}% (ideal ${(100 / n).toFixed(2)}%)`);
    t.true(fraction >= 0.5 / n && fraction <= 1.5 / n, `moved fraction ${fraction}`);
  });

  test(`balanced within 25% across ${n} nodes`, (t) => {
    const members = nodes(n);
    const counts = new Map<string, number>(members.map((id) => [id, 0]));
    for (const owner of placement(members).values()) counts.set(owner, counts.get(owner)! + 1);
    const ideal = IDENTITY_COUNT / n;
    for (const [id, count] of counts) {
      t.true(Math.abs(count - ideal) <= ideal * 0.25, `${id} owns ${count}, ideal ${ideal}`);
    }
  });
}

test('balance holds for sequential, similar-looking node ids', (t) => {
  const members = Array.from({ length: 8 }, (_, i) => `node${i}`);
  const counts = new Map<string, number>();
  for (const owner of placement(members).values()) counts.set(owner, (counts.get(owner) ?? 0) + 1);
  const ideal = IDENTITY_COUNT / members.length;
  for (const [id, count] of counts) t.true(Math.abs(count - ideal) <= ideal * 0.25, `${id} owns ${count}`);
  t.is(counts.size, members.length);
});
