import type { Store } from '../../runtime/storage/index.ts';
import type { Delivery } from '../../proto/client-frames.ts';
import { messageFromEvent } from '../channel/channel-actor.ts';
import { Journals, type InboxRef } from '../tables.ts';

/**
 * Reads a page of a user's inbox and resolves its references into messages (one read per
 * channel involved, not per entry). Inbox entries are immutable once written, so any node may
 * read them without going through the user actor.
 */
export async function readInbox(store: Store, userId: string, afterSeq: number, limit: number): Promise<Delivery[]> {
  const entries = await store.journal.read(Journals.inbox(userId), afterSeq, limit);
  if (entries.length === 0) return [];
  const refs = entries.map((e) => ({ inboxSeq: e.seq, ref: JSON.parse(e.data) as InboxRef }));
  const byChannel = new Map<string, number[]>();
  for (const { ref } of refs) {
    const seqs = byChannel.get(ref.c);
    if (seqs) seqs.push(ref.s);
    else byChannel.set(ref.c, [ref.s]);
  }
  const resolved = new Map<string, Delivery['message']>();
  await Promise.all(
    [...byChannel].map(async ([channelId, seqs]) => {
      for (const e of await store.journal.readSeqs(Journals.channel(channelId), seqs)) {
        resolved.set(`${channelId}:${e.seq}`, messageFromEvent(channelId, e));
      }
    }),
  );
  const out: Delivery[] = [];
  for (const { inboxSeq, ref } of refs) {
    const message = resolved.get(`${ref.c}:${ref.s}`);
    // A reference always points at a durable message (the channel writes before it fans out);
    // a miss would mean a damaged store, and skipping keeps the rest of the inbox readable.
    if (message) out.push({ inbox_seq: inboxSeq, message });
  }
  return out;
}
