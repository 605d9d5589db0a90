import type { Member } from './membership.ts';
import { MembershipError } from './membership-error.ts';

/** Throws INVALID_MEMBER unless `m` can be published and read back by every node. */
export function validateMember(m: Member): void {
  const bad = (why: string) => new MembershipError('INVALID_MEMBER', `invalid member ${JSON.stringify(m.nodeId)}: ${why}`);
  if (typeof m.nodeId !== 'string' || m.nodeId.length === 0) throw bad('empty node id');
  // The id is the last segment of the registry key.
  if (m.nodeId.includes('/')) throw bad("node id contains '/'");
  if (typeof m.grpcAddress !== 'string' || typeof m.wsUrl !== 'string') throw bad('addresses must be strings');
  if (!Number.isFinite(m.load)) throw bad('load must be finite');
  if (!Number.isFinite(m.startedAtMs)) throw bad('startedAtMs must be finite');
}

/** The stored form of a member: JSON with a fixed field order, so equal members encode equally. */
export function encodeMember(m: Member): string {
  return JSON.stringify({
    nodeId: m.nodeId,
    grpcAddress: m.grpcAddress,
    wsUrl: m.wsUrl,
    load: m.load,
    startedAtMs: m.startedAtMs,
  });
}

/** Parses a stored member, or undefined for anything that is not one (never throws). */
export function decodeMember(text: string): Member | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  if (
    typeof r.nodeId !== 'string' ||
    r.nodeId.length === 0 ||
    typeof r.grpcAddress !== 'string' ||
    typeof r.wsUrl !== 'string' ||
    typeof r.load !== 'number' ||
    !Number.isFinite(r.load) ||
    typeof r.startedAtMs !== 'number' ||
    !Number.isFinite(r.startedAtMs)
  ) {
    return undefined;
  }
  return { nodeId: r.nodeId, grpcAddress: r.grpcAddress, wsUrl: r.wsUrl, load: r.load, startedAtMs: r.startedAtMs };
}

interface Entry {
  readonly member: Member;
  readonly encoded: string;
}

/**
 * The member set as of a registry revision, fed from full snapshots and incremental events.
 *
 * Snapshots and events may overlap (a periodic re-read races the watch), so every change
 * carries the registry revision it happened at and anything at or below the revision already
 * applied is ignored. Each mutator returns whether the visible set changed, so listeners are
 * told only about real changes.
 */
export class MemberView {
  private entries = new Map<string, Entry>();
  private appliedRevision = 0;
  private cached: readonly Member[] | undefined = [];

  get revision(): number {
    return this.appliedRevision;
  }

  /** Replaces the whole view with a snapshot taken at `revision`; older snapshots are ignored. */
  replace(snapshot: Iterable<{ nodeId: string; value: string }>, revision: number): boolean {
    if (revision < this.appliedRevision) return false;
    const next = new Map<string, Entry>();
    for (const { nodeId, value } of snapshot) {
      const member = decodeMember(value);
      if (member !== undefined && member.nodeId === nodeId) next.set(nodeId, { member, encoded: encodeMember(member) });
    }
    this.appliedRevision = revision;
    const changed = !sameEntries(this.entries, next);
    if (changed) {
      this.entries = next;
      this.cached = undefined;
    }
    return changed;
  }

  /**
   * Applies the events of one watch response. All of them are judged against the revision
   * applied before the response, because a transaction puts several events at one revision.
   */
  applyEvents(events: Iterable<{ type: 'put' | 'delete'; nodeId: string; value: string; revision: number }>): boolean {
    const floor = this.appliedRevision;
    let highest = floor;
    let changed = false;
    for (const e of events) {
      if (e.revision <= floor) continue;
      highest = Math.max(highest, e.revision);
      if (e.type === 'delete') {
        changed = this.entries.delete(e.nodeId) || changed;
        continue;
      }
      const member = decodeMember(e.value);
      if (member === undefined || member.nodeId !== e.nodeId) {
        // An unreadable record is the same as no record: never route to what we cannot parse.
        changed = this.entries.delete(e.nodeId) || changed;
        continue;
      }
      const encoded = encodeMember(member);
      if (this.entries.get(e.nodeId)?.encoded === encoded) continue;
      this.entries.set(e.nodeId, { member, encoded });
      changed = true;
    }
    this.appliedRevision = highest;
    if (changed) this.cached = undefined;
    return changed;
  }

  has(nodeId: string): boolean {
    return this.entries.has(nodeId);
  }

  /** Sorted by node id; the same frozen array until the next change. */
  list(): readonly Member[] {
    if (this.cached === undefined) {
      const sorted = [...this.entries.keys()].sort().map((id) => Object.freeze({ ...this.entries.get(id)!.member }));
      this.cached = Object.freeze(sorted);
    }
    return this.cached;
  }

  /** Forgets everything, including the revision (used when leaving). */
  clear(): void {
    this.entries = new Map();
    this.appliedRevision = 0;
    this.cached = undefined;
  }
}

function sameEntries(a: ReadonlyMap<string, Entry>, b: ReadonlyMap<string, Entry>): boolean {
  if (a.size !== b.size) return false;
  for (const [id, entry] of a) if (b.get(id)?.encoded !== entry.encoded) return false;
  return true;
}
