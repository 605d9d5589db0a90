import type { KeyValueStore } from '../../runtime/storage/index.ts';
import { Tables } from '../tables.ts';

/**
 * A user's blocks, both ways, held in memory by the user's actor so that every check on a hot
 * path (an inbox entry, a typing notice, a presence push) is a set lookup:
 * - `blocks(id)`: this user blocks `id` (the user actor is the only writer of these rows);
 * - `blockedBy(id)`: `id` blocks this user (rows written by the other user's actor, which then
 *   tells this one to reload that pair: `reloadFrom`).
 * Loaded whole at activation. Sets are made on first use: most users block no one, and a user
 * actor per connected user must stay small.
 *
 * @example
 * const b = new Blocks('alice', store.kv);
 * await b.load();
 * b.blocks('bob'); // false
 */
export class Blocks {
  private mine: Set<string> | undefined;
  private by: Set<string> | undefined;

  constructor(
    private readonly userId: string,
    private readonly kv: KeyValueStore,
  ) {}

  async load(): Promise<void> {
    const [mine, by] = await Promise.all([this.kv.list(Tables.block, this.userId), this.kv.list(Tables.blockedBy, this.userId)]);
    this.mine = mine.length > 0 ? new Set(mine.map((r) => r.key)) : undefined;
    this.by = by.length > 0 ? new Set(by.map((r) => r.key)) : undefined;
  }

  /** Whether this user blocks `id`: nothing `id` sends reaches this user. */
  blocks(id: string): boolean {
    return this.mine?.has(id) ?? false;
  }

  /** Whether `id` blocks this user. */
  blockedBy(id: string): boolean {
    return this.by?.has(id) ?? false;
  }

  /** Either way: the two see each other offline, and typing and read receipts stop between them. */
  hides(id: string): boolean {
    return this.blocks(id) || this.blockedBy(id);
  }

  /** Whether any sender's messages are kept out of the inbox. */
  get filtering(): boolean {
    return this.mine !== undefined && this.mine.size > 0;
  }

  get count(): number {
    return this.mine?.size ?? 0;
  }

  /** Those of `ids` this user blocks. */
  blockedAmong(ids: readonly string[]): string[] {
    return ids.filter((id) => this.blocks(id));
  }

  /** Stores the block (both rows) and ends a friendship either way; the set changes once it is durable. */
  async add(other: string, atMs: number): Promise<void> {
    await this.kv.write([
      { op: 'put', table: Tables.block, partition: this.userId, key: other, value: JSON.stringify({ at_ms: atMs }) },
      { op: 'put', table: Tables.blockedBy, partition: other, key: this.userId, value: JSON.stringify({ at_ms: atMs }) },
      // Blocking ends the friendship both ways (a pending request too); unblocking does not bring it back.
      { op: 'delete', table: Tables.friend, partition: this.userId, key: other },
      { op: 'delete', table: Tables.friend, partition: other, key: this.userId },
    ]);
    (this.mine ??= new Set()).add(other);
  }

  async remove(other: string): Promise<void> {
    await this.kv.write([
      { op: 'delete', table: Tables.block, partition: this.userId, key: other },
      { op: 'delete', table: Tables.blockedBy, partition: other, key: this.userId },
    ]);
    this.mine?.delete(other);
    if (this.mine?.size === 0) this.mine = undefined;
  }

  /**
   * `other` blocked or unblocked this user: read the pair's row again. Read rather than taken
   * from the message, so two changes told out of order still end at what is stored. Returns
   * whether `other` blocks this user now.
   */
  async reloadFrom(other: string): Promise<boolean> {
    const on = (await this.kv.get(Tables.block, other, this.userId)) !== undefined;
    if (on) (this.by ??= new Set()).add(other);
    else {
      this.by?.delete(other);
      if (this.by?.size === 0) this.by = undefined;
    }
    return on;
  }
}
