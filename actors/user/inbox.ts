/**
 * A user's inbox, as data: which channel message sits at each `inbox_seq`. Pure, no I/O; the
 * user actor feeds it (inbox-feed.ts) and persists what it decides.
 *
 * The inbox is a sequence of *segments*: inbox seqs start.. hold channel C's messages from
 * channel seq `from` on, one after another. The last segment is *open*: it goes on with every
 * later message of its channel, so while a user's messages keep coming from one channel, nothing
 * needs writing per message: the channel's history (durable before anyone hears of a message) is
 * the inbox's tail, and inbox_seq = start + (channel_seq - from). A message of another channel
 * needs a *row* in the inbox journal: its segments (the last one open), starting at the next inbox
 * seq, which closes the previous open segment there. Rows are written before the messages they
 * place are handed to any device, so a seq, once seen, never means another message.
 *
 * Readers never go past `head`, the last seq the user actor has taken: messages of the open
 * channel that are durable but not yet taken are not in the inbox yet. After a crash, a new
 * activation takes the open channel's messages up to its head as they are (they extend the open
 * segment: nobody had seen those seqs) and finds what other channels sent meanwhile by their
 * heads, which then get rows. Removal from a channel closes its open segment durably first
 * (channel-actor.ts), so a rebuilt inbox never takes what was sent after it.
 */

import { SmallMap } from './small-map.ts';

export interface Segment {
  readonly channelId: string;
  /** Channel seq of the first message. */
  readonly from: number;
  /** Inbox seq of the first message. */
  readonly start: number;
  /** Messages in the segment; undefined for the open one (it runs up to `head`). */
  count: number | undefined;
}

/** One row of the inbox journal: segments placed one after another from inbox seq `start`. */
export interface InboxRow {
  readonly start: number;
  readonly segments: readonly { readonly channelId: string; readonly from: number; readonly count?: number }[];
}

/** A run of consecutive messages of one channel, to be placed. */
export interface Run {
  readonly channelId: string;
  readonly from: number;
  readonly count: number;
}

/** Part of the inbox to read: `count` messages of a channel from `from`, at inbox seqs from `start`. */
export interface Piece {
  readonly channelId: string;
  readonly from: number;
  readonly start: number;
  readonly count: number;
}

/** Segments kept in memory for reads; older ones are read from the journal. */
const RECENT_SEGMENTS = 64;

export interface InboxState {
  /** Journal seq of the last row applied. */
  readonly rowSeq: number;
  readonly open: { readonly channelId: string; readonly from: number; readonly start: number } | undefined;
  /** Last inbox seq before the open segment (or the head, when none is open). */
  readonly closedHead: number;
  /** Per channel, the last channel seq placed; for the open channel, as of its segment's start. */
  readonly lastSeen: readonly (readonly [string, number])[];
}

export class Inbox {
  head = 0;
  rowSeq = 0;
  readonly lastSeen = new SmallMap<string, number>();
  private recent: Segment[] = [];

  get open(): Segment | undefined {
    const last = this.recent[this.recent.length - 1];
    return last && last.count === undefined ? last : undefined;
  }

  /** The first inbox seq whose segment is in memory. */
  get memoryFrom(): number {
    return this.recent[0]?.start ?? this.head + 1;
  }

  /**
   * Places messages from..from+count-1 of a channel without a row, when they extend the open
   * segment. Returns the inbox seq of the first, or undefined when they need a row.
   */
  tryExtend(channelId: string, from: number, count: number): number | undefined {
    const open = this.open;
    if (open?.channelId !== channelId || this.lastSeen.get(channelId) !== from - 1) return undefined;
    const first = this.head + 1;
    this.head += count;
    this.lastSeen.set(channelId, from + count - 1);
    return first;
  }

  /** The row that places `runs` after the head, the last one left open. */
  rowFor(runs: readonly Run[]): InboxRow {
    return {
      start: this.head + 1,
      segments: runs.map((r, i) => (i === runs.length - 1 ? { channelId: r.channelId, from: r.from } : { channelId: r.channelId, from: r.from, count: r.count })),
    };
  }

  /** A row that closes the open segment at the head and opens nothing. */
  closingRow(): InboxRow {
    return { start: this.head + 1, segments: [] };
  }

  /**
   * Applies a row (one just written, or one replayed from the journal). `openTaken` is how many
   * messages of its open segment are taken already (a replayed row: none; the head grows later).
   */
  apply(row: InboxRow, rowSeq: number, openTaken: number): void {
    const open = this.open;
    if (open) {
      // Everything the open segment held up to this row stays where it was.
      open.count = row.start - open.start;
      if (open.count > 0) this.lastSeen.set(open.channelId, open.from + open.count - 1);
    }
    let at = row.start;
    for (const s of row.segments) {
      const segment: Segment = { channelId: s.channelId, from: s.from, start: at, count: s.count };
      this.recent.push(segment);
      if (s.count !== undefined) {
        at += s.count;
        this.lastSeen.set(s.channelId, s.from + s.count - 1);
      } else {
        at += openTaken;
        if (openTaken > 0) this.lastSeen.set(s.channelId, s.from + openTaken - 1);
        else this.lastSeen.set(s.channelId, s.from - 1);
      }
    }
    this.head = at - 1;
    this.rowSeq = rowSeq;
    if (this.recent.length > RECENT_SEGMENTS) this.recent = this.recent.slice(this.recent.length - RECENT_SEGMENTS);
  }

  /** After a rebuild: the open segment takes its channel's messages up to that channel's head. */
  extendOpenTo(channelHead: number): void {
    const open = this.open;
    if (!open) return;
    const last = this.lastSeen.get(open.channelId) ?? open.from - 1;
    if (channelHead <= last) return;
    this.head += channelHead - last;
    this.lastSeen.set(open.channelId, channelHead);
  }

  /** Pieces covering (afterSeq, afterSeq + limit] up to the head, from memory; undefined when it starts before memory. */
  piecesInMemory(afterSeq: number, limit: number): Piece[] | undefined {
    if (afterSeq + 1 < this.memoryFrom && afterSeq < this.head) return undefined;
    return piecesOf(this.recent, afterSeq, Math.min(this.head, afterSeq + limit), this.head);
  }

  state(): InboxState {
    const open = this.open;
    const lastSeen = [...this.lastSeen].map(([c, s]) => [c, open && c === open.channelId ? open.from - 1 : s] as const);
    return {
      rowSeq: this.rowSeq,
      open: open && { channelId: open.channelId, from: open.from, start: open.start },
      closedHead: open ? open.start - 1 : this.head,
      lastSeen,
    };
  }

  /** Starts from a saved state; rows after `state.rowSeq` are applied next, then `extendOpenTo`. */
  restore(state: InboxState): void {
    this.rowSeq = state.rowSeq;
    this.lastSeen.clear();
    for (const [c, s] of state.lastSeen) this.lastSeen.set(c, s);
    this.recent = state.open ? [{ ...state.open, count: undefined }] : [];
    this.head = state.closedHead;
    if (state.open) this.lastSeen.set(state.open.channelId, state.open.from - 1);
  }
}

/** Segments of consecutive rows (oldest first), with the open segments' counts filled in. */
export function segmentsOfRows(rows: readonly InboxRow[], head: number): Segment[] {
  const out: Segment[] = [];
  for (const [i, row] of rows.entries()) {
    const end = (rows[i + 1]?.start ?? head + 1) - 1;
    let at = row.start;
    for (const s of row.segments) {
      const count = s.count ?? Math.max(0, end - at + 1);
      out.push({ channelId: s.channelId, from: s.from, start: at, count });
      at += count;
    }
  }
  return out;
}

/** The parts of `segments` within (afterSeq, upTo], in order. */
export function piecesOf(segments: readonly Segment[], afterSeq: number, upTo: number, head: number): Piece[] {
  const out: Piece[] = [];
  for (const s of segments) {
    const end = s.start + (s.count ?? head - s.start + 1) - 1;
    const lo = Math.max(s.start, afterSeq + 1);
    const hi = Math.min(end, upTo);
    if (lo > hi) continue;
    out.push({ channelId: s.channelId, from: s.from + (lo - s.start), start: lo, count: hi - lo + 1 });
  }
  return out;
}

// ---- Encoding: rows are small binary records; snapshots, rare, are JSON.

/** Rows written before inboxes had segments hold JSON `{c, s}`: one message, at inbox seq = row seq. */
interface LegacyRef {
  readonly c: string;
  readonly s: number;
}

const ROW_VERSION = 1;

export function encodeRow(row: InboxRow): Uint8Array {
  const parts: number[] = [ROW_VERSION];
  const push = (v: number): void => {
    while (v >= 128) {
      parts.push((v % 128) | 128);
      v = Math.floor(v / 128);
    }
    parts.push(v);
  };
  push(row.segments.length);
  const strings: Buffer[] = [];
  for (const s of row.segments) {
    const id = Buffer.from(s.channelId, 'utf8');
    push(id.length);
    parts.push(-strings.length - 1); // placeholder: the id's bytes go here
    strings.push(id);
    push(s.from);
    push(s.count ?? 0);
  }
  const size = parts.reduce((n, p) => n + (p < 0 ? strings[-p - 1]!.length : 1), 0);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const p of parts) {
    if (p < 0) {
      const s = strings[-p - 1]!;
      s.copy(out, at);
      at += s.length;
    } else out[at++] = p;
  }
  return out;
}

/** A row as stored: `key` is its start (absent on legacy rows, whose start is their seq). */
export function decodeRow(e: { readonly seq: number; readonly key?: bigint; readonly data: Uint8Array }): InboxRow {
  const data = e.data;
  if (data[0] === 0x7b) {
    const ref = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as LegacyRef;
    return { start: e.seq, segments: [{ channelId: ref.c, from: ref.s, count: 1 }] };
  }
  if (data[0] !== ROW_VERSION) throw new Error(`inbox row of unknown version ${data[0]}`);
  let at = 1;
  const read = (): number => {
    let v = 0;
    let scale = 1;
    for (;;) {
      const b = data[at++]!;
      v += (b & 127) * scale;
      if (b < 128) return v;
      scale *= 128;
    }
  };
  const n = read();
  const segments: { channelId: string; from: number; count?: number }[] = [];
  for (let i = 0; i < n; i++) {
    const len = read();
    const channelId = Buffer.from(data.buffer, data.byteOffset + at, len).toString('utf8');
    at += len;
    const from = read();
    const count = read();
    segments.push(count === 0 ? { channelId, from } : { channelId, from, count });
  }
  return { start: Number(e.key ?? BigInt(e.seq)), segments };
}

/** What a snapshot of the user actor's inbox holds. */
export interface InboxSnapshot extends InboxState {
  /** The epoch of the activation that saved it, and whether it saved it as it ended cleanly. */
  readonly epoch: number;
  readonly clean: boolean;
  /** The node-loss count (actors/node-losses.ts) as of the inbox's last check of every channel. */
  readonly checkedLoss: number;
}

export function encodeSnapshot(s: InboxSnapshot): Uint8Array {
  return Buffer.from(JSON.stringify({ v: 2, ...s }), 'utf8');
}

/** Snapshots from before segments (`{head, lastSeen}`) describe legacy rows: inbox seq = row seq. */
export function decodeSnapshot(data: Uint8Array): InboxSnapshot {
  const raw = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as
    | (InboxSnapshot & { v: 2 })
    | { v?: undefined; head: number; lastSeen: [string, number][] };
  if (raw.v === 2) return raw;
  return { rowSeq: raw.head, open: undefined, closedHead: raw.head, lastSeen: raw.lastSeen, epoch: 0, clean: false, checkedLoss: 0 };
}
