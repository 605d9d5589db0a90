import protobuf from 'protobufjs/light.js';

/**
 * How deep a frame nests, read from its wire bytes before protobufjs decodes them, so that a
 * frame nesting deeper than its schema allows is refused with its own code before a decoder
 * recurses into it or allocates a message for it.
 *
 * Why a scan of our own when protobufjs 7.6 stops at 100 levels ("maximum nesting depth
 * exceeded"): 100 is a library default, not our schema's bound; older protobufjs had no limit at
 * all (a few thousand nested groups overflowed the stack); and the error is then one
 * "not valid protobuf" among many, where a client deserves to be told what it did.
 *
 * What nests, as protobufjs reads it (the scan mirrors this, not the protobuf spec):
 * - a field the schema declares as a message opens a level, whatever its wire type says
 *   (protobufjs decodes a declared message field from a length, never checking the wire type);
 * - a group (wire type 3), which proto3 never writes but a decoder skips recursively when it is an
 *   unknown field, opens a level until its end tag (wire type 4);
 * - an unknown length-delimited field is opaque bytes: skipped by its length, never descended
 *   into, so nesting inside it costs a decoder nothing and is not counted.
 * The frame itself is level 1. The scan is a loop over an explicit stack (depth never costs call
 * stack), reads each tag once, and skips every payload by its length: linear in the number of
 * fields, not bytes.
 *
 * It reads as protobufjs's Reader does over a Uint8Array (what the gateway hands in), quirks
 * included (a 32-bit varint's sixth to tenth bytes are skipped unread; a 64-bit varint cut at the
 * end is taken as it is); test/proto/frame-depth.test.ts checks it against protobufjs on 200,000
 * mutated frames. Bytes the scan cannot read (a length past the end, a bad wire type, a cut
 * varint) are left to protobufjs to refuse: the scan only ever adds the depth refusal, never
 * decides that malformed bytes are valid, and protobufjs's own limit still bounds whatever
 * follows such bytes. (A Node Buffer gets protobufjs's BufferReader, which cuts an overlong
 * string short instead of refusing it: more bytes unreadable to the scan, nothing deeper.)
 *
 * Cost: about a fifth of a protobufjs decode of the same frame (0.1 µs for a small send here).
 *
 * @example
 * ```ts
 * const guard = new DepthGuard(root.lookupType('chat.v1.ClientFrame')); // guard.maxDepth === 2
 * if (guard.check(bytes) === 'too_deep') refuse('FRAME_TOO_DEEP');
 * ```
 */
export type DepthVerdict = 'ok' | 'too_deep' | 'unreadable';

/** How protobufjs reads a declared field, whatever wire type the bytes claim. */
type FieldRead = 'varint32' | 'varint64' | 'fixed64' | 'fixed32' | 'length' | LevelSchema;

interface LevelSchema {
  readonly fields: ReadonlyMap<number, FieldRead>;
}

const VARINT32_TYPES = new Set(['int32', 'uint32', 'sint32', 'bool']);
const VARINT64_TYPES = new Set(['int64', 'uint64', 'sint64']);
const FIXED64_TYPES = new Set(['fixed64', 'sfixed64', 'double']);
const FIXED32_TYPES = new Set(['fixed32', 'sfixed32', 'float']);

export class DepthGuard {
  /** The deepest a well-formed frame of this type nests (the frame itself is 1). */
  readonly maxDepth: number;
  private readonly root: LevelSchema;

  /**
   * @param type a resolved protobufjs message type without recursion (a type that contains itself
   *   has no schema bound: such a schema must pick a limit on purpose, so this throws).
   */
  constructor(type: protobuf.Type) {
    const schemas = new Map<protobuf.Type, LevelSchema>();
    const depths = new Map<protobuf.Type, number>();
    const visiting = new Set<protobuf.Type>();
    const build = (t: protobuf.Type): LevelSchema => {
      const known = schemas.get(t);
      if (known) return known;
      if (visiting.has(t)) throw new Error(`${t.fullName} contains itself: a recursive schema has no depth bound; give DepthGuard a deliberate limit`);
      visiting.add(t);
      const fields = new Map<number, FieldRead>();
      let deepest = 0;
      for (const f of t.fieldsArray) {
        f.resolve();
        if (f.resolvedType instanceof protobuf.Type) {
          if (f.map || f.delimited) throw new Error(`${t.fullName}.${f.name}: map and group fields are not scanned yet`);
          fields.set(f.id, build(f.resolvedType));
          deepest = Math.max(deepest, depths.get(f.resolvedType)!);
          continue;
        }
        const kind = f.resolvedType instanceof protobuf.Enum ? 'int32' : f.type;
        const read: FieldRead = VARINT32_TYPES.has(kind) ? 'varint32' : VARINT64_TYPES.has(kind) ? 'varint64' : FIXED64_TYPES.has(kind) ? 'fixed64' : FIXED32_TYPES.has(kind) ? 'fixed32' : 'length';
        // A packed scalar is read element by element; none of our frames has one, so not mirrored yet.
        if (f.map || (f.repeated && read !== 'length')) throw new Error(`${t.fullName}.${f.name}: map and packed fields are not scanned yet`);
        fields.set(f.id, read);
      }
      visiting.delete(t);
      const schema: LevelSchema = { fields };
      schemas.set(t, schema);
      depths.set(t, 1 + deepest);
      return schema;
    };
    this.root = build(type);
    this.maxDepth = depths.get(type)!;
  }

  /** `too_deep` as soon as the bytes open a level past `maxDepth`, before reading the rest. */
  check(bytes: Uint8Array): DepthVerdict {
    return new DepthScan(bytes, this.root, this.maxDepth).run();
  }
}

/** One open level: a message (bounded by its length) or a group (until its end tag). */
interface Level {
  readonly schema: LevelSchema | undefined;
  /** For a message, where it ends; for a group, the end of the message around it. */
  readonly end: number;
  readonly group: boolean;
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_START_GROUP = 3;
const WIRE_END_GROUP = 4;
const WIRE_FIXED32 = 5;

/** Thrown inside the scan only; `check` turns it into `unreadable`. @internal */
class Unreadable extends Error {}
const UNREADABLE = new Unreadable();

/** @internal */
class DepthScan {
  private pos = 0;
  private readonly stack: Level[] = [];

  constructor(
    private readonly buf: Uint8Array,
    root: LevelSchema,
    private readonly max: number,
  ) {
    this.stack.push({ schema: root, end: buf.length, group: false });
  }

  run(): DepthVerdict {
    try {
      return this.walk();
    } catch (err) {
      if (err === UNREADABLE) return 'unreadable';
      throw err;
    }
  }

  private walk(): DepthVerdict {
    const stack = this.stack;
    while (stack.length > 0) {
      const level = stack[stack.length - 1]!;
      if (!level.group && this.pos >= level.end) {
        // A nested message must end exactly at its length (protobufjs checks); the frame may not.
        if (this.pos !== level.end && stack.length > 1) throw UNREADABLE;
        stack.pop();
        continue;
      }
      const tag = this.uint32(level.end);
      const wire = tag & 7;
      if (level.group) {
        // protobufjs ends a group at any end tag, without matching its field number.
        if (wire === WIRE_END_GROUP) stack.pop();
        else if (this.unknown(wire, level.end)) return 'too_deep';
        continue;
      }
      const read = level.schema!.fields.get(tag >>> 3);
      if (read === undefined) {
        if (this.unknown(wire, level.end)) return 'too_deep';
      } else if (typeof read === 'object') {
        const length = this.uint32(level.end);
        if (length > level.end - this.pos) throw UNREADABLE;
        if (this.open({ schema: read, end: this.pos + length, group: false })) return 'too_deep';
      } else {
        this.skipAs(read, level.end);
      }
    }
    return 'ok';
  }

  /** Skips an unknown field the way a decoder does; true when it opens a level too many. */
  private unknown(wire: number, end: number): boolean {
    switch (wire) {
      case WIRE_VARINT:
        this.skipVarint(end);
        return false;
      case WIRE_FIXED64:
        this.skip(8, end);
        return false;
      case WIRE_LENGTH:
        this.skipLength(end);
        return false;
      case WIRE_START_GROUP:
        return this.open({ schema: undefined, end, group: true });
      case WIRE_FIXED32:
        this.skip(4, end);
        return false;
      default:
        throw UNREADABLE;
    }
  }

  private open(level: Level): boolean {
    this.stack.push(level);
    return this.stack.length > this.max;
  }

  private skipAs(read: Exclude<FieldRead, LevelSchema>, end: number): void {
    if (read === 'varint32') this.uint32(end);
    else if (read === 'varint64') this.longVarint(end);
    else if (read === 'fixed64') this.skip(8, end);
    else if (read === 'fixed32') this.skip(4, end);
    else this.skipLength(end);
  }

  private skipLength(end: number): void {
    this.skip(this.uint32(end), end);
  }

  private skip(n: number, end: number): void {
    if (n > end - this.pos) throw UNREADABLE;
    this.pos += n;
  }

  /** protobufjs's `skip()` of an unknown varint: any number of bytes, up to the first without its high bit. */
  private skipVarint(end: number): void {
    do {
      if (this.pos >= end) throw UNREADABLE;
    } while (this.buf[this.pos++]! & 0x80);
  }

  /**
   * protobufjs's `uint32()`, byte for byte, for tags, lengths and 32-bit fields: the low 32 bits
   * of the first five bytes; after a fifth byte with its high bit set, five more bytes are
   * skipped unread. Near the end at most four bytes are read.
   */
  private uint32(end: number): number {
    const b = this.buf;
    if (end - this.pos < 5) {
      let value = 0;
      for (let i = 0; i < 4; i++) {
        if (this.pos >= end) throw UNREADABLE;
        const x = b[this.pos++]!;
        value = (value | ((x & 0x7f) << (7 * i))) >>> 0;
        if (x < 0x80) return value;
      }
      throw UNREADABLE;
    }
    let value = 0;
    for (let i = 0; i < 5; i++) {
      const x = b[this.pos++]!;
      value = (value | ((i < 4 ? x & 0x7f : x & 0x0f) << (7 * i))) >>> 0;
      if (x < 0x80) return value;
    }
    this.pos += 5;
    if (this.pos > end) throw UNREADABLE;
    return value;
  }

  /**
   * protobufjs's 64-bit varint read, for where it stops (the value is not needed): up to ten
   * bytes; near the end, three bytes checked and a fourth taken unchecked (which may step past
   * the end: the message then ends, and a nested one fails its length check).
   */
  private longVarint(end: number): void {
    const b = this.buf;
    if (end - this.pos > 4) {
      for (let i = 0; i < 5; i++) if (b[this.pos++]! < 0x80) return;
      for (let i = 0; i < 5; i++) {
        if (this.pos >= end) throw UNREADABLE;
        if (b[this.pos++]! < 0x80) return;
      }
      throw UNREADABLE;
    }
    for (let i = 0; i < 3; i++) {
      if (this.pos >= end) throw UNREADABLE;
      if (b[this.pos++]! < 0x80) return;
    }
    this.pos++;
  }
}
