import type { FastCounter, HistogramCell, NodeMetrics } from '../runtime/metrics/index.ts';

/** Seconds; a healthy node delivers in a few ms, an overloaded one in seconds. */
const DELIVERY_BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The chat layer's figures on the node's registry (runtime/metrics knows nothing of messages):
 * - `parley_messages_in_total`: messages stored in a channel's history by this node (counted per
 *   append batch, after the store said durable);
 * - `parley_messages_out_total`: messages written live to a client socket by this node;
 * - `parley_send_to_delivery_seconds`: from the channel stamping a message (its created_at_ms,
 *   just before the append) to a live delivery of it being written to a recipient's socket: the
 *   store append, the fan-out through the user actor and any node hop, by the wall clock (across
 *   nodes, clock skew is in it);
 * - `parley_push_queue_depth`: push jobs queued as the notifier's last poll saw them (the store's
 *   queue: at most a page per partition; Redis: the schedule plus the stream), read when scraped;
 * - `parley_sessions_fell_behind_total`: times a session stopped live pushes because its client
 *   did not read fast enough (past --session-max-unsent-bytes) and went on from the inbox;
 * - `parley_ephemeral_frames_dropped_total`: presence, typing and read-receipt frames not sent
 *   to such a client;
 * - `parley_password_hashes_total`: scrypt derivations run by this node (signups, login checks,
 *   decoys for unknown users); a throttled login adds none;
 * - `parley_logins_throttled_total`: logins refused by the failed-login throttle.
 */
export class ChatMetrics {
  readonly messagesIn: FastCounter;
  readonly messagesOut: FastCounter;
  readonly sendToDelivery: HistogramCell;
  readonly sessionsBehind: FastCounter;
  readonly ephemeralDropped: FastCounter;
  readonly passwordHashes: FastCounter;
  readonly loginsThrottled: FastCounter;

  constructor(metrics: NodeMetrics, pushQueueDepth: () => number) {
    this.messagesIn = metrics.counter('parley_messages_in_total', 'Messages stored in channel histories by this node.');
    this.messagesOut = metrics.counter('parley_messages_out_total', 'Messages delivered live to client sockets by this node.');
    this.sendToDelivery = metrics
      .histogram('parley_send_to_delivery_seconds', 'From a message being stamped by its channel to its live delivery to a socket, seconds.', DELIVERY_BOUNDS)
      .child();
    this.sessionsBehind = metrics.counter('parley_sessions_fell_behind_total', 'Times a session stopped live pushes for a client that did not read fast enough, and went on paging from its inbox.');
    this.ephemeralDropped = metrics.counter('parley_ephemeral_frames_dropped_total', 'Presence, typing and read-receipt frames dropped for clients that did not read fast enough.');
    metrics.gauge('parley_push_queue_depth', 'Push jobs queued, as seen by the last poll of this node.', [], () => [[{}, pushQueueDepth()]]);
    this.passwordHashes = metrics.counter('parley_password_hashes_total', 'Password derivations (scrypt) run by this node: signups and login checks, decoys for unknown users included.');
    this.loginsThrottled = metrics.counter('parley_logins_throttled_total', 'Logins refused by the failed-login throttle before any password check.');
  }
}
