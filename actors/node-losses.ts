import { codeOf } from '../runtime/errors.ts';
import type { Logger } from '../runtime/log.ts';
import type { Store } from '../runtime/storage/index.ts';
import { Journals, Tables } from './tables.ts';

/**
 * Records that a node may have lost channel notifications (it crashed, or left without handing
 * off): one event in the losses journal, whose seq every user actor compares with the one it
 * last checked its inbox at. Nodes that observe the same loss each add one: a few more checks,
 * never one too few. Appends from several nodes race for the next seq; the loser tries again.
 */
export async function recordLoss(store: Store, nodeId: string, what: string, log: Logger): Promise<void> {
  const { journal } = store;
  const data = Buffer.from(JSON.stringify({ node: nodeId, what, at_ms: Date.now() }), 'utf8');
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const epoch = await journal.acquire(Journals.losses, nodeId);
      const seq = (await journal.highestSeq(Journals.losses)) + 1;
      await journal.append(Journals.losses, epoch, [{ seq, data }]);
      // So the next node to record one has no writer of ours to fence.
      await journal.release(Journals.losses, epoch);
      return;
    } catch (err) {
      const code = codeOf(err);
      if (code !== 'FENCED' && code !== 'SEQ_CONFLICT') throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 50));
    }
  }
  log.warn({ what }, 'node loss not recorded after 20 attempts');
}

/** The losses recorded so far: a user actor that checked its inbox at a lower count checks again. */
export function lossesSoFar(store: Store): Promise<number> {
  return store.journal.highestSeq(Journals.losses);
}

/**
 * At start: if this node's previous run did not stop cleanly, it may have taken notifications
 * with it. Then marks the node running until `markStopped`.
 */
export async function markRunning(store: Store, nodeId: string, log: Logger): Promise<void> {
  const state = await store.kv.get(Tables.nodeState, nodeId, '');
  if (state !== 'stopped') await recordLoss(store, nodeId, state === undefined ? 'first start or data from before node states' : 'restart after a crash', log);
  await store.kv.write([{ op: 'put', table: Tables.nodeState, partition: nodeId, key: '', value: 'running' }]);
}

export async function markStopped(store: Store, nodeId: string): Promise<void> {
  await store.kv.write([{ op: 'put', table: Tables.nodeState, partition: nodeId, key: '', value: 'stopped' }]);
}
