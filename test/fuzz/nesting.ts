/**
 * Deeply nested protobuf payloads, built on the wire format: groups (wire type 3 ... 4), groups
 * inside a frame's body, and nesting inside unknown length-delimited fields (opaque to a
 * decoder). `deepFrame` draws one of several shapes, all nesting past chat.v1.ClientFrame's bound.
 */
import { encodeClientFrame } from '../../proto/index.ts';
import type { Random } from './fuzz-support.ts';

export function varint(v: number): number[] {
  const out: number[] = [];
  for (;;) {
    if (v < 128) {
      out.push(v);
      return out;
    }
    out.push((v % 128) | 128);
    v = Math.floor(v / 128);
  }
}

const tag = (field: number, wire: number): number[] => varint(field * 8 + wire);

/** `depth` nested groups of `field` (opened, then closed), with `filler` inside each level. */
export function groups(depth: number, field = 15, filler: readonly number[] = []): Uint8Array {
  const start = [...tag(field, 3), ...filler];
  const end = tag(field, 4);
  const out = new Uint8Array(depth * (start.length + end.length));
  let at = 0;
  for (let i = 0; i < depth; i++) {
    out.set(start, at);
    at += start.length;
  }
  for (let i = 0; i < depth; i++) {
    out.set(end, at);
    at += end.length;
  }
  return out;
}

/** A frame (ref 1) whose body field `field` (2-10) holds `content`. */
export function inBody(field: number, content: Uint8Array): Uint8Array {
  return Uint8Array.from([0x08, 1, ...tag(field, 2), ...varint(content.length), ...content]);
}

/** `depth` unknown length-delimited fields (15), each inside the one before. */
export function opaque(depth: number): Uint8Array {
  let inner: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < depth; i++) inner = Buffer.concat([Uint8Array.from([...tag(15, 2), ...varint(inner.length)]), inner]);
  return inner;
}

const cat = (...parts: ArrayLike<number>[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

const BODY_FIELDS = [2, 3, 4, 5, 6, 7, 8, 9, 10];

/** A depth past the bound (2), log-uniform up to `max` so that most payloads are small and some huge. */
function depthPast(random: Random, max: number): number {
  return Math.max(3, Math.floor(Math.exp((random.int(1_000_000) / 1_000_000) * Math.log(max))));
}

/** One payload nesting deeper than a ClientFrame may, of a random shape, at most `maxDepth` levels. */
export function deepFrame(random: Random, maxDepth: number): { shape: string; bytes: Uint8Array } {
  // Unknown to the frame and to every body (a known field is read as its declared type, so a
  // group tag on field 1 is a `ref`, not a level): from one-byte tags to the largest field number.
  const field = random.pick([15, 16, 100, 2047, 536_870_911]);
  // Under 400 KB whatever the shape (a level costs two tags, plus 16 bytes of filler in shape 3),
  // so each payload is refused for its depth, never for its size.
  const depth = Math.min(depthPast(random, maxDepth), Math.floor(400_000 / (2 * tag(field, 3).length + 16)));
  const heartbeat = encodeClientFrame(random.int(1_000_000), 'heartbeat', {});
  switch (random.int(7)) {
    case 0:
      return { shape: 'groups after a valid frame', bytes: cat(heartbeat, groups(depth - 1, field)) };
    case 1:
      return { shape: 'groups before the body', bytes: cat(groups(depth - 1, field), heartbeat) };
    case 2:
      return { shape: 'groups inside the body', bytes: inBody(random.pick(BODY_FIELDS), groups(depth - 2, field)) };
    case 3:
      // Each level carries a varint, a fixed64 and a short string: the scan must skip them all.
      return { shape: 'groups with fields at every level', bytes: cat(heartbeat, groups(Math.max(2, Math.floor(depth / 8)), field, [0x08, 0x96, 0x01, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 0x1a, 2, 0x68, 0x69])) };
    case 4:
      return { shape: 'groups opened and never closed', bytes: cat(heartbeat, groups(depth - 1, field).subarray(0, (depth - 1) * tag(field, 3).length)) };
    case 5:
      // Opaque nesting first (fine: skipped by its length), then groups (not fine).
      return { shape: 'opaque nesting, then groups', bytes: cat(heartbeat, opaque(1 + random.int(200)), groups(depth - 1, field)) };
    default: {
      // A declared message field sent with the varint wire type: protobufjs decodes it anyway.
      const inner = groups(depth - 2, field);
      return { shape: 'groups in a body field sent with the wrong wire type', bytes: cat([0x08, 1], tag(random.pick(BODY_FIELDS), 0), varint(inner.length), inner) };
    }
  }
}
