/**
 * Mutated chat.v1.ClientFrame bytes: valid frames of every body (the seeds) changed by bit flips,
 * truncation, corrupted lengths, random bytes, wrong wire types, overlong varints, injected and
 * spliced fields, and combinations of these. Deterministic for a given Random.
 */
import { encodeClientFrame } from '../../proto/index.ts';
import type { Random } from './fuzz-support.ts';
import { groups, varint } from './nesting.ts';

export interface SeedValues {
  readonly token: string;
  readonly channelId: string;
  readonly userIds: readonly string[];
}

/** One or more valid frames of each body, with values a real client would send. */
export function seedFrames(v: SeedValues): Uint8Array[] {
  const big = 'ü'.repeat(300);
  return [
    encodeClientFrame(1, 'hello', { token: v.token, device_id: 'fuzz', last_inbox_seq: 12 }),
    encodeClientFrame(2, 'send', { channel_id: v.channelId, client_msg_id: 'c-1', text: 'hello there' }),
    encodeClientFrame(3, 'send', { channel_id: v.channelId, client_msg_id: 'c-2', text: big }),
    encodeClientFrame(4, 'ack', { inbox_seq: 7 }),
    encodeClientFrame(5, 'sync', { after_inbox_seq: 0, limit: 5 }),
    encodeClientFrame(6, 'history', { channel_id: v.channelId, before_message_id: '', limit: 10 }),
    encodeClientFrame(7, 'history', { channel_id: v.channelId, before_message_id: '7234567890123456789', limit: 100 }),
    encodeClientFrame(8, 'presence_query', { user_ids: [...v.userIds] }),
    encodeClientFrame(9, 'heartbeat', {}),
    encodeClientFrame(10, 'read', { channel_id: v.channelId, channel_seq: 3 }),
    encodeClientFrame(11, 'typing', { channel_id: v.channelId }),
    encodeClientFrame(2 ** 40, 'heartbeat', {}),
  ];
}

/** Where a field's tag, and for a length-delimited one its length, sit in a frame. */
interface FieldAt {
  readonly tagAt: number;
  readonly tagEnd: number;
  /** Start and end of the length varint; absent for other wire types. */
  readonly lengthAt?: number;
  readonly lengthEnd?: number;
  readonly end: number;
}

function readVarint(b: Uint8Array, at: number): { value: number; end: number } {
  let value = 0;
  let scale = 1;
  for (let i = at; i < b.length && i < at + 10; i++) {
    value += (b[i]! & 0x7f) * scale;
    scale *= 128;
    if (b[i]! < 0x80) return { value, end: i + 1 };
  }
  throw new Error('bad varint');
}

/** The fields of a frame and of its body (a seed is valid; a mutant may not be: then what parses). */
function fieldsOf(b: Uint8Array): FieldAt[] {
  const out: FieldAt[] = [];
  const walk = (from: number, to: number, descend: boolean): void => {
    let at = from;
    try {
      while (at < to) {
        const t = readVarint(b, at);
        const wire = t.value % 8;
        if (wire === 0) {
          const v = readVarint(b, t.end);
          out.push({ tagAt: at, tagEnd: t.end, end: v.end });
          at = v.end;
        } else if (wire === 2) {
          const l = readVarint(b, t.end);
          const end = l.end + l.value;
          if (end > to) return;
          out.push({ tagAt: at, tagEnd: t.end, lengthAt: t.end, lengthEnd: l.end, end });
          const field = Math.floor(t.value / 8);
          if (descend && field >= 2 && field <= 10) walk(l.end, end, false);
          at = end;
        } else if (wire === 1 || wire === 5) {
          const end = t.end + (wire === 1 ? 8 : 4);
          out.push({ tagAt: at, tagEnd: t.end, end });
          at = end;
        } else return;
      }
    } catch {
      // A mutant's fields up to the break are still worth mutating.
    }
  };
  walk(0, b.length, true);
  return out;
}

const splice = (b: Uint8Array, from: number, to: number, insert: ArrayLike<number>): Uint8Array => {
  const out = new Uint8Array(b.length - (to - from) + insert.length);
  out.set(b.subarray(0, from), 0);
  out.set(insert, from);
  out.set(b.subarray(to), from + insert.length);
  return out;
};

/** A varint of `value` padded with continuation bytes to `size` bytes (overlong, still decodable up to 10). */
function overlong(value: number, size: number): number[] {
  const v = varint(value);
  if (size <= v.length) return v;
  const out = [...v.slice(0, -1).map((x) => x | 0x80), v[v.length - 1]! | 0x80];
  while (out.length < size - 1) out.push(0x80);
  out.push(0x00);
  return out;
}

type Mutator = (r: Random, b: Uint8Array, seeds?: readonly Uint8Array[]) => Uint8Array;

const flipBits: Mutator = (r, b) => {
  if (b.length === 0) return Uint8Array.of(r.int(256));
  const out = Uint8Array.from(b);
  for (let i = 1 + r.int(8); i > 0; i--) out[r.int(out.length)]! ^= 1 << r.int(8);
  return out;
};

const truncate: Mutator = (r, b) => b.subarray(0, r.int(Math.max(1, b.length)));

const LENGTHS = [0, 1, 127, 128, 65_535, 0x7fffffff, 0xffffffff, 2 ** 35, 2 ** 53];
const corruptLength: Mutator = (r, b) => {
  const lengths = fieldsOf(b).filter((f) => f.lengthAt !== undefined);
  if (lengths.length === 0) return flipBits(r, b);
  const f = r.pick(lengths);
  const old = readVarint(b, f.lengthAt!).value;
  const value = r.int(3) === 0 ? r.pick(LENGTHS) : Math.max(0, old + r.int(9) - 4);
  return splice(b, f.lengthAt!, f.lengthEnd!, varint(value));
};

const randomBytes: Mutator = (r, b) => {
  if (r.int(2) === 0 || b.length === 0) return r.bytes(r.int(64));
  const at = r.int(b.length);
  return splice(b, at, Math.min(b.length, at + 1 + r.int(16)), r.bytes(1 + r.int(16)));
};

const wrongWireType: Mutator = (r, b) => {
  const fields = fieldsOf(b);
  if (fields.length === 0) return flipBits(r, b);
  const f = r.pick(fields);
  const t = readVarint(b, f.tagAt).value;
  const wire = (t % 8 + 1 + r.int(7)) % 8;
  return splice(b, f.tagAt, f.tagEnd, varint(Math.floor(t / 8) * 8 + wire));
};

const overlongVarint: Mutator = (r, b) => {
  const fields = fieldsOf(b);
  if (fields.length === 0) return flipBits(r, b);
  const f = r.pick(fields);
  const [from, to] = f.lengthAt !== undefined && r.int(2) === 0 ? [f.lengthAt, f.lengthEnd!] : [f.tagAt, f.tagEnd];
  return splice(b, from, to, overlong(readVarint(b, from).value, 2 + r.int(10)));
};

const FIELD_NUMBERS = [0, 1, 2, 3, 11, 15, 16, 19_000, 536_870_911];
const injectField: Mutator = (r, b) => {
  const fields = fieldsOf(b);
  const at = fields.length === 0 || r.int(3) === 0 ? r.int(b.length + 1) : Math.min(b.length, r.pick(fields).end);
  const field = r.int(2) === 0 ? r.pick(FIELD_NUMBERS) : r.int(64);
  const wire = r.int(8);
  const head = varint(field * 8 + wire);
  let body: readonly number[] | Uint8Array;
  switch (wire) {
    case 0:
      body = varint(r.int(2 ** 31));
      break;
    case 1:
      body = r.bytes(8);
      break;
    case 2: {
      const content = r.bytes(r.int(32));
      body = [...varint(content.length), ...content];
      break;
    }
    case 3:
      body = [...groups(r.int(3), 1 + r.int(20)), ...varint(field * 8 + 4)];
      break;
    case 5:
      body = r.bytes(4);
      break;
    default:
      body = r.bytes(r.int(4));
  }
  return splice(b, at, at, [...head, ...body]);
};

const spliceFrames: Mutator = (r, b, seeds = [b]) => {
  const other = r.pick(seeds);
  switch (r.int(3)) {
    case 0:
      return Buffer.concat([b, other]); // two bodies: the oneof keeps the last
    case 1:
      return Buffer.concat([b.subarray(0, r.int(b.length + 1)), other.subarray(r.int(other.length + 1))]);
    default: {
      const at = r.int(b.length + 1);
      const span = b.subarray(at, at + 1 + r.int(32));
      return splice(b, at, at, span); // a span repeated
    }
  }
};

const deleteSpan: Mutator = (r, b) => {
  if (b.length === 0) return b;
  const at = r.int(b.length);
  return splice(b, at, Math.min(b.length, at + 1 + r.int(16)), []);
};

const MUTATORS: readonly Mutator[] = [flipBits, flipBits, truncate, corruptLength, corruptLength, randomBytes, wrongWireType, wrongWireType, overlongVarint, injectField, injectField, spliceFrames, deleteSpan];

/** One mutant of `seed`: one mutation, or (a quarter of the time) two or three stacked. */
export function mutate(r: Random, seed: Uint8Array, seeds: readonly Uint8Array[] = [seed]): Uint8Array {
  let b = seed;
  const rounds = r.int(4) === 0 ? 2 + r.int(2) : 1;
  for (let i = 0; i < rounds; i++) b = r.pick(MUTATORS)(r, b, seeds);
  return b;
}
