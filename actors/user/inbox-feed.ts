import type { Store } from '../../runtime/storage/index.ts';
import { decodeMessage } from '../../proto/client-codec.ts';
import { messageBytesOf } from '../stored-message.ts';
import { Journals, Tables, type MembershipRow } from '../tables.ts';
import { Inbox, decodeRow, encodeRow, encodeSnapshot, piecesOf, segmentsOfRows, type InboxRow, type Piece, type Run } from './inbox.ts';
import type { DeliveryBytes, PublishedMessage } from './user-messages.ts';

/** What arrives for the inbox, in the order the user actor received it. */
type Arrival =
  | { readonly kind: 'messages'; readonly channelId: string; readonly messages: readonly PublishedMessage[] }
  /** The channel's head is at least `seq`: take what is missing up to it. */
  | { readonly kind: 'head'; readonly channelId: string; readonly seq: number }
  | { readonly kind: 'joined'; readonly channelId: string; readonly atSeq: number }
  | { readonly kind: 'left'; readonly channelId: string; readonly atSeq: number; readonly done: (err?: unknown) => void }
  /** Close the open segment durably (a block was added: see closeOpen). No channel: '' keeps `a.channelId` readable for every arrival. */
  | { readonly kind: 'close'; readonly channelId: ''; readonly done: (err?: unknown) => void };

/**
 * What the feed needs of the actor that owns it: methods on the actor rather than closures in an
 * options object, which cost every connected user about 300 bytes.
 */
export interface InboxFeedOwner {
  readonly userId: string;
  readonly store: Store;
  readonly inbox: Inbox;
  /** The owner epoch of the inbox journal. */
  inboxEpoch(): number;
  /** The node-loss count the inbox was last checked at (see user-actor.ts heal), for snapshots. */
  inboxCheckedLoss(): number;
  /** Messages of one channel now in the inbox, to go to the user's devices: inbox seqs first.. in order. */
  inboxDelivered(firstInboxSeq: number, channelId: string, messages: readonly PublishedMessage[]): void;
  /** A row could not be written: the actor must start over from storage. */
  inboxFailed(err: unknown): void;
  /** Whether messages of this sender stay out of the inbox (the user blocks them). */
  inboxRefuses(senderId: string): boolean;
  /** Whether inboxRefuses can say yes at all (the user blocks anyone). */
  inboxFiltering(): boolean;
}

/** Rows between snapshots: bounds what an activation replays. */
const SNAPSHOT_EVERY_ROWS = 64;
/** Messages read per page when filling a gap. */
const FILL_PAGE = 500;
/**
 * While the user blocks anyone, the open segment takes at most this many messages, then a row
 * starts a new one: an activation reads the open segment's messages to find where it must stop
 * (see acceptedUpTo), and this bounds that read.
 */
const MAX_OPEN_WHILE_FILTERING = 500;

/**
 * Feeds a user's inbox (inbox.ts): takes what channels publish, in order, fills gaps from their
 * histories, writes a row when the messages it takes do not extend the open segment, and hands
 * messages to the devices once their place is durable. One thing at a time: while a row is being
 * written or a gap read, later arrivals wait, so the inbox order is the order they came in (per
 * channel: channel order).
 */
export class InboxFeed {
  private queue: Arrival[] = [];
  private busy = false;
  private stopped = false;
  private rowsSinceSnapshot = 0;
  private readonly pid: string;

  constructor(private readonly o: InboxFeedOwner) {
    this.pid = Journals.inbox(o.userId);
  }

  get idle(): boolean {
    return !this.busy && this.queue.length === 0;
  }

  published(channelId: string, messages: readonly PublishedMessage[]): void {
    // The common case first: nothing queued, the messages extend the open segment.
    if (this.queue.length === 0 && !this.busy && messages.length > 0 && !this.filtersAny(messages)) {
      const first = this.o.inbox.tryExtend(channelId, messages[0]!.seq, messages.length);
      if (first !== undefined) return this.o.inboxDelivered(first, channelId, messages);
    }
    this.push({ kind: 'messages', channelId, messages });
  }

  channelHead(channelId: string, seq: number): void {
    this.push({ kind: 'head', channelId, seq });
  }

  joined(channelId: string, atSeq: number): void {
    this.push({ kind: 'joined', channelId, atSeq });
  }

  left(channelId: string, atSeq: number): Promise<void> {
    return new Promise((resolve, reject) => this.push({ kind: 'left', channelId, atSeq, done: (err) => (err === undefined ? resolve() : reject(err)) }));
  }

  /**
   * Closes the open segment durably, after what is queued now. Called when the user blocks
   * someone: the stored open segment then holds nothing of theirs, and it never takes anything
   * of theirs later, so an activation may extend it up to their first message (acceptedUpTo).
   */
  closeOpen(): Promise<void> {
    return new Promise((resolve, reject) => this.push({ kind: 'close', channelId: '', done: (err) => (err === undefined ? resolve() : reject(err)) }));
  }

  /**
   * The channel seq up to which the open segment may be extended at activation: the message
   * before the first one after `after` whose sender the user blocks, or `head`. Reads at most
   * the segment (MAX_OPEN_WHILE_FILTERING) plus what came since it was last taken.
   */
  async acceptedUpTo(channelId: string, after: number, head: number): Promise<number> {
    for (let from = after; from < head; ) {
      const page = await this.o.store.journal.read(Journals.channel(channelId), from, Math.min(FILL_PAGE, head - from));
      if (page.length === 0) break;
      for (const e of page) if (this.o.inboxRefuses(decodeMessage(messageBytesOf(channelId, e)).sender_id)) return e.seq - 1;
      from = page[page.length - 1]!.seq;
    }
    return head;
  }

  stop(reason: unknown): void {
    this.stopped = true;
    for (const a of this.queue) if (a.kind === 'left' || a.kind === 'close') a.done(reason);
    this.queue = [];
  }

  /**
   * Whether these messages cannot simply extend the open segment because of blocks: one of
   * them is from a blocked sender, or the segment is as long as it may get while filtering.
   */
  private filtersAny(messages: readonly PublishedMessage[]): boolean {
    if (!this.o.inboxFiltering()) return false;
    const open = this.o.inbox.open;
    if (open && this.o.inbox.head - open.start + 1 >= MAX_OPEN_WHILE_FILTERING) return true;
    return messages.some((m) => this.o.inboxRefuses(m.senderId));
  }

  private push(a: Arrival): void {
    if (this.stopped) {
      if (a.kind === 'left' || a.kind === 'close') a.done(new Error('inbox stopped'));
      return;
    }
    this.queue.push(a);
    this.pump();
  }

  /** Handles arrivals until one needs I/O; that one calls pump again when done. */
  private pump(): void {
    const inbox = this.o.inbox;
    while (!this.busy && !this.stopped && this.queue.length > 0) {
      const a = this.queue[0]!;
      const last = inbox.lastSeen.get(a.channelId);
      switch (a.kind) {
        case 'close':
          this.queue.shift();
          if (!inbox.open) {
            a.done();
            continue;
          }
          return this.io(() => this.closeSegment(a.done));
        case 'joined':
          inbox.lastSeen.set(a.channelId, Math.max(last ?? 0, a.atSeq));
          this.queue.shift();
          continue;
        case 'head':
          if (last !== undefined && a.seq <= last) {
            this.queue.shift();
            continue;
          }
          return this.io(() => this.fill(a, last));
        case 'left':
          if (last === undefined || a.atSeq > last) return this.io(() => this.fill(a, last));
          this.queue.shift();
          if (inbox.open?.channelId !== a.channelId) {
            a.done();
            continue;
          }
          return this.io(() => this.closeSegment(a.done));
        case 'messages': {
          const first = a.messages[0]?.seq ?? 0;
          const lastOffered = a.messages[a.messages.length - 1]?.seq ?? 0;
          if (last !== undefined && lastOffered <= last) {
            this.queue.shift();
            continue;
          }
          if (last === undefined || first > last + 1) return this.io(() => this.fill(a, last));
          let fresh = first > last ? a.messages : a.messages.filter((m) => m.seq > last);
          if (this.o.inboxFiltering()) {
            // Messages of blocked senders get no inbox seq: the channel moves on past them
            // (lastSeen), and the entries before and after them stay consecutive. One that would
            // follow on in the open segment closes it first (durably), since a rebuilt inbox
            // extends an open segment over its channel's history as it stands.
            const refused = leading(fresh, (m) => this.o.inboxRefuses(m.senderId));
            if (refused > 0) {
              const skipTo = fresh[refused - 1]!.seq;
              if (refused < fresh.length) this.queue[0] = { ...a, messages: fresh.slice(refused) };
              else this.queue.shift();
              if (inbox.open?.channelId !== a.channelId) {
                inbox.lastSeen.set(a.channelId, skipTo);
                continue;
              }
              return this.io(() => this.writeRow(inbox.closingRow(), []).then(() => void inbox.lastSeen.set(a.channelId, skipTo)));
            }
            const accepted = leading(fresh, (m) => !this.o.inboxRefuses(m.senderId));
            if (accepted < fresh.length) {
              // Place the ones before the first blocked message; the rest waits its turn.
              this.queue.splice(0, 1, { ...a, messages: fresh.slice(0, accepted) }, { ...a, messages: fresh.slice(accepted) });
              fresh = fresh.slice(0, accepted);
            }
          }
          const at = this.filtersAny(fresh) ? undefined : inbox.tryExtend(a.channelId, fresh[0]!.seq, fresh.length);
          if (at !== undefined) {
            this.queue.shift();
            this.o.inboxDelivered(at, a.channelId, fresh);
            continue;
          }
          // A row: this arrival and every ready one after it, in one write.
          const { runs, taken, messages } = this.plan();
          return this.io(() => this.writeRow(inbox.rowFor(runs), messages).then(() => void this.queue.splice(0, taken)));
        }
      }
    }
  }

  /**
   * Leading arrivals that are ready to place (messages that follow on in their channel), as runs
   * of one channel each; stops at the first that needs a read or is something else.
   */
  private plan(): { runs: Run[]; taken: number; messages: PublishedMessage[][] } {
    const seen = new Map<string, number>();
    const runs: Run[] = [];
    const messages: PublishedMessage[][] = [];
    let taken = 0;
    for (const a of this.queue) {
      if (a.kind !== 'messages') break;
      const last = seen.get(a.channelId) ?? this.o.inbox.lastSeen.get(a.channelId);
      if (last === undefined) break;
      const fresh = a.messages.filter((m) => m.seq > last);
      if (fresh.length > 0 && fresh[0]!.seq !== last + 1) break;
      // A blocked sender's message is the pump's to skip, at its turn.
      if (this.o.inboxFiltering() && fresh.some((m) => this.o.inboxRefuses(m.senderId))) break;
      taken++;
      if (fresh.length === 0) continue;
      const prev = runs[runs.length - 1];
      if (prev && prev.channelId === a.channelId) {
        runs[runs.length - 1] = { ...prev, count: prev.count + fresh.length };
        messages[messages.length - 1]!.push(...fresh);
      } else {
        runs.push({ channelId: a.channelId, from: fresh[0]!.seq, count: fresh.length });
        messages.push([...fresh]);
      }
      seen.set(a.channelId, fresh[fresh.length - 1]!.seq);
    }
    return { runs, taken, messages };
  }

  private io(work: () => Promise<void>): void {
    this.busy = true;
    work().then(
      () => {
        this.busy = false;
        this.pump();
      },
      (err: unknown) => {
        this.busy = false;
        this.stop(err);
        this.o.inboxFailed(err);
      },
    );
  }

  /** Writes a row; once durable, applies it and hands its messages to the devices. */
  private async writeRow(row: InboxRow, runs: readonly PublishedMessage[][]): Promise<void> {
    const inbox = this.o.inbox;
    const seq = inbox.rowSeq + 1;
    await this.o.store.journal.append(this.pid, this.o.inboxEpoch(), [{ seq, key: BigInt(row.start), data: encodeRow(row) }]);
    const total = runs.reduce((n, r) => n + r.length, 0);
    inbox.apply(row, seq, runs[runs.length - 1]?.length ?? 0);
    let at = row.start;
    // One run per segment of the row, in its order (plan).
    runs.forEach((r, i) => {
      this.o.inboxDelivered(at, row.segments[i]!.channelId, r);
      at += r.length;
    });
    if (at - row.start !== total) throw new Error('inbox row and messages disagree');
    if (++this.rowsSinceSnapshot >= SNAPSHOT_EVERY_ROWS) {
      this.rowsSinceSnapshot = 0;
      await this.saveSnapshot(false);
    }
  }

  /** Writes the row that ends the open segment, then tells `done` (the error too: the caller's request failed). */
  private closeSegment(done: (err?: unknown) => void): Promise<void> {
    return this.writeRow(this.o.inbox.closingRow(), []).then(
      () => done(),
      (err: unknown) => {
        done(err);
        throw err;
      },
    );
  }

  /**
   * Reads what an arrival is missing from the channel's history. Whether the user may have it is
   * the membership row's to say: absent, nothing is taken; present, nothing before its `at_seq`
   * (a member added late, or again).
   */
  private async fill(a: Exclude<Arrival, { kind: 'joined' | 'close' }>, last: number | undefined): Promise<void> {
    const inbox = this.o.inbox;
    const raw = await this.o.store.kv.get(Tables.userChannel, this.o.userId, a.channelId);
    if (raw === undefined) {
      // Not (or no longer) a member: nothing of the channel is ours.
      this.queue.shift();
      if (a.kind === 'left') a.done();
      return;
    }
    const from = Math.max(last ?? 0, (JSON.parse(raw) as MembershipRow).at_seq ?? 0);
    inbox.lastSeen.set(a.channelId, from);
    const upTo = a.kind === 'messages' ? a.messages[0]!.seq - 1 : a.kind === 'head' ? a.seq : a.atSeq;
    // One page at a time: the arrival stays queued behind it, and the next pass reads on.
    const page = from < upTo ? await this.o.store.journal.read(Journals.channel(a.channelId), from, Math.min(FILL_PAGE, upTo - from)) : [];
    const missing = page.map((e): PublishedMessage => {
      const bytes = messageBytesOf(a.channelId, e);
      return { seq: e.seq, senderId: decodeMessage(bytes).sender_id, bytes };
    });
    if (missing.length > 0 && missing[0]!.seq === from + 1) {
      this.queue.unshift({ kind: 'messages', channelId: a.channelId, messages: missing });
      return;
    }
    // Nothing (more) to read. A history without the seqs a notification implies would be a
    // damaged store: what it does hold is taken from where it is, rather than waiting forever.
    if (a.kind === 'head') this.queue.shift();
    else if (a.kind === 'left') this.queue[0] = { ...a, atSeq: Math.min(a.atSeq, inbox.lastSeen.get(a.channelId)!) };
    else if (a.messages[0]!.seq > from + 1) inbox.lastSeen.set(a.channelId, a.messages[0]!.seq - 1);
  }

  async saveSnapshot(clean: boolean): Promise<void> {
    const epoch = this.o.inboxEpoch();
    const data = encodeSnapshot({ ...this.o.inbox.state(), epoch, clean, checkedLoss: this.o.inboxCheckedLoss() });
    await this.o.store.journal.saveSnapshot(this.pid, epoch, { seq: this.o.inbox.rowSeq, data });
  }

  /** Inbox entries after `afterSeq`, at most `limit`, never past the head. */
  async read(afterSeq: number, limit: number): Promise<DeliveryBytes[]> {
    const inbox = this.o.inbox;
    const head = inbox.head;
    const pieces = inbox.piecesInMemory(afterSeq, limit) ?? (await this.piecesFromJournal(afterSeq, Math.min(head, afterSeq + limit), head));
    const pages = await Promise.all(pieces.map((p) => this.readPiece(p)));
    return pages.flat();
  }

  private async piecesFromJournal(afterSeq: number, upTo: number, head: number): Promise<Piece[]> {
    const { journal } = this.o.store;
    // The row holding afterSeq + 1: the newest whose start is at or below it (legacy rows have
    // no key: their start is their seq, and they all come before keyed rows).
    const [floor] = await journal.readBefore(this.pid, BigInt(afterSeq + 2), 1);
    const fromRow = floor ? floor.seq - 1 : afterSeq;
    const rows: InboxRow[] = [];
    for (let after = fromRow; ; ) {
      const page = await journal.read(this.pid, after, 200);
      for (const e of page) rows.push(decodeRow(e));
      if (page.length < 200 || rows[rows.length - 1]!.start > upTo) break;
      after = page[page.length - 1]!.seq;
    }
    return piecesOf(segmentsOfRows(rows, head), afterSeq, upTo, head);
  }

  private async readPiece(p: Piece): Promise<DeliveryBytes[]> {
    const events = await this.o.store.journal.read(Journals.channel(p.channelId), p.from - 1, p.count);
    return events.map((e) => ({ inboxSeq: p.start + (e.seq - p.from), message: messageBytesOf(p.channelId, e) }));
  }
}

/** How many messages at the start of `messages` satisfy `test`. */
function leading(messages: readonly PublishedMessage[], test: (m: PublishedMessage) => boolean): number {
  let n = 0;
  while (n < messages.length && test(messages[n]!)) n++;
  return n;
}
