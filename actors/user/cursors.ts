import { codeOf } from '../../runtime/errors.ts';
import type { Logger } from '../../runtime/log.ts';
import type { KeyValueStore } from '../../runtime/storage/index.ts';
import { Tables, type StoredCursor } from '../tables.ts';

/**
 * Device cursors are written at most this often per user. A hello resumes after the later of the
 * client's last_inbox_seq and the cursor (see cursorOf), so a cursor lost in a crash (kill -9: up
 * to this long of acks) only replays entries the device already had; a clean stop flushes all.
 */
export const CURSOR_FLUSH_MS = 1_000;

/** The user's device cursors: acks kept in memory and written together, at most once a second. */
export class Cursors {
  private dirty: Map<string, number> | undefined;
  private flushing: Map<string, number> | undefined;

  constructor(
    private readonly userId: string,
    private readonly kv: KeyValueStore,
    private readonly log: Logger,
  ) {}

  get pending(): boolean {
    return (this.dirty?.size ?? 0) > 0;
  }

  /** Records an ack (capped at the inbox head); true when a flush must be scheduled. */
  ack(deviceId: string, inboxSeq: number, head: number): boolean {
    if (!Number.isSafeInteger(inboxSeq) || inboxSeq < 0) return false;
    const scheduled = (this.dirty?.size ?? 0) > 0;
    this.dirty ??= new Map();
    this.dirty.set(deviceId, Math.min(Math.max(inboxSeq, this.dirty.get(deviceId) ?? 0), head));
    return !scheduled;
  }

  /**
   * Where the device last acked: the newest of what is waiting to be flushed, what is being
   * flushed and what is stored. Advisory like the cursor itself: if the store cannot be read, the
   * session resumes from the client's own last_inbox_seq (more replay, never a loss).
   */
  async cursorOf(deviceId: string): Promise<number> {
    const pending = Math.max(this.dirty?.get(deviceId) ?? 0, this.flushing?.get(deviceId) ?? 0);
    try {
      const raw = await this.kv.get(Tables.cursor, this.userId, deviceId);
      const stored = raw ? (JSON.parse(raw) as StoredCursor).inbox_seq : 0;
      return Math.max(pending, Number.isSafeInteger(stored) ? stored : 0);
    } catch (err) {
      this.log.warn({ user: this.userId, code: codeOf(err) }, "device cursor not read; resuming from the client's seq");
      return pending;
    }
  }

  async flush(): Promise<void> {
    const dirty = this.dirty;
    if (!dirty || dirty.size === 0) return;
    this.dirty = undefined;
    // Kept until written, so a connect meanwhile still sees these acks (see cursorOf).
    this.flushing = dirty;
    const now = Date.now();
    try {
      await this.kv.write(
        [...dirty].map(([device, seq]) => ({
          op: 'put' as const,
          table: Tables.cursor,
          partition: this.userId,
          key: device,
          value: JSON.stringify({ inbox_seq: seq, updated_at_ms: now } satisfies StoredCursor),
        })),
      );
    } finally {
      if (this.flushing === dirty) this.flushing = undefined;
    }
  }
}
