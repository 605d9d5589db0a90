/**
 * The inbox feed with a blocked sender, on a real SQLite store: a blocked sender's messages get
 * no inbox seq and leave no gap; one that would follow on in the open segment closes it durably;
 * while the user blocks anyone the open segment takes at most 500 messages (a row starts the
 * next: at 500 none, at 501 one); an inbox rebuilt from its rows extends its open segment only
 * up to a blocked sender's first message (acceptedUpTo) and the feed takes the rest.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../runtime/log.ts';
import type { Store } from '../../runtime/storage/index.ts';
import { SqliteStore } from '../../runtime/storage/sqlite/sqlite-store.ts';
import { completeMessage } from '../../proto/message-bytes.ts';
import { decodeMessage } from '../../proto/client-codec.ts';
import { encodeStoredMessage } from '../../actors/stored-message.ts';
import { Journals, Tables } from '../../actors/tables.ts';
import { Inbox, decodeRow } from '../../actors/user/inbox.ts';
import { InboxFeed, type InboxFeedOwner } from '../../actors/user/inbox-feed.ts';
import type { PublishedMessage } from '../../actors/user/user-messages.ts';

const USER = 'a';
const GROUP = 'g-1';

class Owner implements InboxFeedOwner {
  readonly userId = USER;
  inbox = new Inbox();
  /** inbox seq -> text, as devices were handed them. */
  readonly delivered = new Map<number, string>();
  failure: unknown;
  constructor(
    readonly store: Store,
    private readonly epoch: number,
    private readonly blocked: ReadonlySet<string>,
  ) {}
  inboxEpoch(): number {
    return this.epoch;
  }
  inboxCheckedLoss(): number {
    return 0;
  }
  inboxDelivered(first: number, _channelId: string, messages: readonly PublishedMessage[]): void {
    messages.forEach((m, i) => this.delivered.set(first + i, decodeMessage(m.bytes).text));
  }
  inboxFailed(err: unknown): void {
    this.failure = err;
  }
  inboxRefuses(senderId: string): boolean {
    return this.blocked.has(senderId);
  }
  inboxFiltering(): boolean {
    return this.blocked.size > 0;
  }
}

/** A channel's history in the store, as the channel actor writes it. */
class History {
  head = 0;
  constructor(
    private readonly store: Store,
    private readonly epoch: number,
  ) {}
  async send(sender: string, text: string): Promise<PublishedMessage> {
    const seq = ++this.head;
    const body = encodeStoredMessage({ message_id: String(1000 + seq), sender_id: sender, client_msg_id: `c${seq}`, text, created_at_ms: 1 });
    const r = await this.store.journal.append(Journals.channel(GROUP), this.epoch, [{ seq, key: BigInt(1000 + seq), dedupKey: `${sender}:c${seq}`, data: body }]);
    if (!r.ok) throw new Error('not appended');
    return { seq, senderId: sender, bytes: completeMessage(body, GROUP, seq) };
  }
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await settle();
}

test('inbox feed - a blocked sender leaves no gap, closes the open segment, bounds it at 500, and a rebuild stops before them', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-feed-'));
  const store = new SqliteStore({ path: join(dir, 'parley.db'), log: silentLogger() });
  t.teardown(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await store.kv.write([{ op: 'put', table: Tables.userChannel, partition: USER, key: GROUP, value: JSON.stringify({ joined_at_ms: 1, kind: 'group', at_seq: 0 }) }]);
  const history = new History(store, await store.journal.acquire(Journals.channel(GROUP), 'test'));
  const pid = Journals.inbox(USER);
  const owner = new Owner(store, await store.journal.acquire(pid, 'test'), new Set(['b']));
  const feed = new InboxFeed(owner);
  const rows = async (): Promise<number> => (await store.journal.read(pid, 0, 10_000)).length;

  // 500 of c's messages: one row (the first), the open segment takes the rest. The 501st: a row.
  for (let i = 1; i <= 500; i++) feed.published(GROUP, [await history.send('c', `c${i}`)]);
  await until(() => owner.delivered.size === 500);
  t.is(await rows(), 1, 'at 500: still one open segment');
  feed.published(GROUP, [await history.send('c', 'c501')]);
  await until(() => owner.delivered.size === 501);
  t.is(await rows(), 2, 'past 500: a row starts the next segment');

  // b follows on in the open segment: skipped, and the segment is closed by a row.
  feed.published(GROUP, [await history.send('b', 'b1')]);
  await until(() => feed.idle);
  t.is(await rows(), 3, 'closed durably');
  // Mixed in one batch: c, b, c -> c and c, consecutive.
  const batch = [await history.send('c', 'c502'), await history.send('b', 'b2'), await history.send('c', 'c503')];
  feed.published(GROUP, batch);
  await until(() => owner.delivered.size === 503);
  t.is(owner.failure, undefined);
  t.deepEqual([...owner.delivered.keys()], Array.from({ length: 503 }, (_, i) => i + 1), 'inbox seqs 1..503, no gap');
  t.false([...owner.delivered.values()].some((x) => x.startsWith('b')));
  t.deepEqual([owner.delivered.get(501), owner.delivered.get(502), owner.delivered.get(503)], ['c501', 'c502', 'c503']);

  // Written while the actor was away (not published): c, b, c. A rebuild from the rows extends
  // the open segment up to b's message, no further; the feed skips it and takes the last c.
  await history.send('c', 'c504');
  await history.send('b', 'b3');
  await history.send('c', 'c505');
  feed.stop(new Error('deactivated'));
  const rebuilt = new Owner(store, await store.journal.acquire(pid, 'test'), new Set(['b']));
  for (const e of await store.journal.read(pid, 0, 10_000)) rebuilt.inbox.apply(decodeRow(e), e.seq, 0);
  const open = rebuilt.inbox.open!;
  t.is(open.channelId, GROUP);
  const feed2 = new InboxFeed(rebuilt);
  const upTo = await feed2.acceptedUpTo(GROUP, rebuilt.inbox.lastSeen.get(GROUP) ?? open.from - 1, history.head);
  t.is(upTo, history.head - 2, 'up to c504, before b3');
  rebuilt.inbox.extendOpenTo(upTo);
  t.is(rebuilt.inbox.head, 504, 'every seq seen before keeps its place, c504 is next');
  feed2.channelHead(GROUP, history.head);
  await until(() => rebuilt.delivered.size === 1);
  await until(() => feed2.idle);
  t.deepEqual([...rebuilt.delivered], [[505, 'c505']]);
  const all = await feed2.read(0, 1_000);
  t.deepEqual(all.map((d) => d.inboxSeq), Array.from({ length: 505 }, (_, i) => i + 1), 'read back: 1..505');
  t.false(all.some((d) => decodeMessage(d.message).sender_id === 'b'));
});
