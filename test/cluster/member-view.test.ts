import test from 'ava';
import { MemberView, decodeMember, encodeMember, validateMember } from '../../runtime/cluster/member-view.ts';
import type { Member } from '../../runtime/cluster/membership.ts';

const m = (nodeId: string, load = 0): Member => ({ nodeId, grpcAddress: `${nodeId}:1`, wsUrl: `ws://${nodeId}`, load, startedAtMs: 1 });
const rec = (nodeId: string, load = 0) => ({ nodeId, value: encodeMember(m(nodeId, load)) });
const ids = (v: MemberView) => v.list().map((x) => x.nodeId);

test('encode/decode round-trip and reject malformed records', (t) => {
  t.deepEqual(decodeMember(encodeMember(m('a', 3))), m('a', 3));
  t.is(decodeMember('not json'), undefined);
  t.is(decodeMember('null'), undefined);
  t.is(decodeMember(JSON.stringify({ ...m('a'), load: 'high' })), undefined);
  t.is(decodeMember(JSON.stringify({ ...m('a'), nodeId: '' })), undefined);
});

test('validateMember refuses ids the key layout cannot hold and non-finite numbers', (t) => {
  t.notThrows(() => validateMember(m('node-1')));
  t.throws(() => validateMember(m('')), { message: /empty/ });
  t.throws(() => validateMember(m('a/b')), { message: /'\/'/ });
  t.throws(() => validateMember({ ...m('a'), load: Number.NaN }), { message: /load/ });
});

test('snapshots replace the view, sorted, and report whether anything changed', (t) => {
  const v = new MemberView();
  t.true(v.replace([rec('b'), rec('a')], 5));
  t.deepEqual(ids(v), ['a', 'b']);
  t.false(v.replace([rec('a'), rec('b')], 6), 'same content is no change');
  t.is(v.revision, 6);
  t.false(v.replace([rec('c')], 4), 'an older snapshot is ignored');
  t.deepEqual(ids(v), ['a', 'b']);
  t.true(v.replace([rec('a', 7)], 9));
  t.deepEqual(v.list(), [m('a', 7)]);
});

test('events at or below the applied revision are ignored; one response may share a revision', (t) => {
  const v = new MemberView();
  v.replace([rec('a'), rec('b')], 10);
  t.false(v.applyEvents([{ type: 'delete', nodeId: 'a', value: '', revision: 10 }]), 'already in the snapshot');
  t.true(v.applyEvents([
    { type: 'delete', nodeId: 'a', value: '', revision: 11 },
    { type: 'delete', nodeId: 'b', value: '', revision: 11 },
  ]));
  t.deepEqual(ids(v), [], 'both deletes of one transaction applied');
  t.is(v.revision, 11);
  t.true(v.applyEvents([{ type: 'put', ...rec('c'), revision: 12 }]));
  t.false(v.applyEvents([{ type: 'put', ...rec('c'), revision: 13 }]), 'identical put is no change');
  t.true(v.applyEvents([{ type: 'put', nodeId: 'c', value: 'garbage', revision: 14 }]), 'unreadable record drops the member');
  t.deepEqual(ids(v), []);
  t.false(v.applyEvents([{ type: 'put', nodeId: 'x', value: encodeMember(m('y')), revision: 15 }]), 'id must match the key');
});

test('the list is the same frozen array until something changes', (t) => {
  const v = new MemberView();
  v.replace([rec('a')], 1);
  const first = v.list();
  t.is(v.list(), first);
  t.true(Object.isFrozen(first) && Object.isFrozen(first[0]));
  v.applyEvents([{ type: 'put', ...rec('b'), revision: 2 }]);
  t.not(v.list(), first);
});
