import type { KeyValueStore } from '../../runtime/storage/index.ts';
import { Tables } from '../tables.ts';

/**
 * A channel's read marks: per member, the channel_seq they have read up to. Loaded from the store
 * on first use (most channel activations never need them), written through on every advance, so
 * a mark survives restarts. A mark only moves forward.
 *
 * @example
 * const marks = new ReadMarks('g-1', store.kv);
 * await marks.advance('alice', 42); // true: stored
 * await marks.advance('alice', 40); // false: lower, nothing stored
 */
export class ReadMarks {
  private marks: Map<string, number> | undefined;
  private loading: Promise<Map<string, number>> | undefined;
  private readonly dirty = new Set<string>();
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly channelId: string,
    private readonly kv: KeyValueStore,
  ) {}

  async of(userId: string): Promise<number> {
    return (await this.load()).get(userId) ?? 0;
  }

  /** Every member's mark that has one, by user id. */
  async all(): Promise<[string, number][]> {
    return [...(await this.load())].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }

  /**
   * Moves the mark to `seq` if that is further; true when it moved, once it is stored. Writes go
   * one at a time, each with the marks as they are then (many reads at once make few writes), so
   * the stored mark is the highest even when advances overlap; the channel is not held meanwhile.
   */
  async advance(userId: string, seq: number): Promise<boolean> {
    const marks = await this.load();
    if (seq <= (marks.get(userId) ?? 0)) return false;
    marks.set(userId, seq);
    this.dirty.add(userId);
    const step = this.chain.then(() => this.writeDirty());
    this.chain = step.catch(() => undefined);
    await step;
    return true;
  }

  private async writeDirty(): Promise<void> {
    if (this.dirty.size === 0) return;
    const users = [...this.dirty];
    this.dirty.clear();
    const marks = this.marks!;
    try {
      await this.kv.write(users.map((u) => ({ op: 'put' as const, table: Tables.readMark, partition: this.channelId, key: u, value: String(marks.get(u)) })));
    } catch (err) {
      for (const u of users) this.dirty.add(u); // the next advance writes them again
      throw err;
    }
  }

  private load(): Promise<Map<string, number>> {
    if (this.marks) return Promise.resolve(this.marks);
    this.loading ??= this.kv.list(Tables.readMark, this.channelId).then((rows) => (this.marks = new Map(rows.map((r) => [r.key, Number(r.value)]))));
    return this.loading;
  }
}
