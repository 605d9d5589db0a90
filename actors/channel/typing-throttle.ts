import type { TypingNotice } from '../../proto/client-frames.ts';

/** How long a client shows "typing" after a notice, unless another one renews it. */
export const TYPING_EXPIRES_MS = 3_000;
/** One notice per user per channel per this long while the user keeps typing. */
export const TYPING_EVERY_MS = 1_000;

interface Typist {
  /** When the last notice for this user went out. */
  sentAtMs: number;
  /** A Typing frame came after it: one more notice is due when the window ends. */
  due: boolean;
}

/**
 * A channel's typing notices: exactly one per user per TYPING_EVERY_MS while the user keeps
 * typing, whatever rate the client sends at (a frame per keystroke costs the members one notice a
 * second). The first frame goes out at once; frames inside the window make one more go out when
 * the window ends (the channel calls `flush` from a timer at `nextFlushInMs`), so a typist is
 * neither throttled below one a second by jitter nor forwarded above it. Nothing is stored.
 */
export class TypingThrottle {
  private readonly typists = new Map<string, Typist>();

  constructor(
    private readonly channelId: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** A Typing frame from `userId`: sends a notice now, or makes one due at the end of the window. */
  typed(userId: string, send: (notice: TypingNotice) => void): void {
    const now = this.now();
    const t = this.typists.get(userId);
    if (t && now - t.sentAtMs < TYPING_EVERY_MS) {
      t.due = true;
      return;
    }
    this.typists.set(userId, { sentAtMs: now, due: false });
    send(this.notice(userId));
  }

  /** Sends the notices whose window ended; forgets typists that went quiet. */
  flush(send: (notice: TypingNotice) => void): void {
    const now = this.now();
    for (const [userId, t] of this.typists) {
      if (now - t.sentAtMs < TYPING_EVERY_MS) continue;
      if (!t.due) {
        this.typists.delete(userId);
        continue;
      }
      t.sentAtMs = now;
      t.due = false;
      send(this.notice(userId));
    }
  }

  /** When `flush` has something to do next, or undefined when nothing is due. */
  get nextFlushInMs(): number | undefined {
    let next: number | undefined;
    for (const t of this.typists.values()) {
      if (!t.due) continue;
      const at = Math.max(0, t.sentAtMs + TYPING_EVERY_MS - this.now());
      next = next === undefined ? at : Math.min(next, at);
    }
    return next;
  }

  private notice(userId: string): TypingNotice {
    return { channel_id: this.channelId, user_id: userId, expires_in_ms: TYPING_EXPIRES_MS };
  }
}
