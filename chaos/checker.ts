/**
 * The invariant checker: judges a History (history.ts) against Parley's promise. Pure: no I/O,
 * no clock, so test/chaos/checker.test.ts feeds it crafted histories.
 *
 * What it counts (each figure of the summary line):
 * - acked lost: acknowledged messages missing from their channel's history, from a member's
 *   inbox, or from what a member's device handed to its app (counted once per message);
 * - duplicates: a message handed to one app twice, one client_msg_id stored as two messages,
 *   one message at two inbox_seqs or two channel_seqs;
 * - order violations: a device handing out a channel's messages out of channel_seq order or its
 *   inbox out of inbox_seq order, and any divergence between what devices, inboxes, acks and the
 *   channel's history say sits at a (channel, channel_seq) or an (user, inbox_seq);
 * - gaps: a hole in a device's stream, in an inbox (inbox_seq from 1 without a hole) or in a
 *   history (channel_seq from 1), and a device that ends behind its user's inbox;
 * - reconnect: per device, from losing its connection (the close, or the last time a watchdog
 *   knew it good) to the next welcome; a device that never came back is `stuck`;
 * - presence: how long an observer took to be shown what an expectation says (late: over its
 *   bound; never: not by the end), and any "online" shown for a user inside one of its offline
 *   windows after the observer had been shown it offline (stale online: a stale write took effect).
 */
import type { DeliveryRecord, History, PresenceObservation, SendRecord } from './history.ts';

export interface Percentiles {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface CheckReport {
  readonly ackedLost: number;
  readonly duplicates: number;
  readonly orderViolations: number;
  readonly gaps: number;
  readonly reconnect: Percentiles & { readonly stuck: number };
  readonly presence: {
    readonly expectations: number;
    readonly late: number;
    readonly never: number;
    readonly p99Ms: number;
    readonly staleOnline: number;
  };
  /** Send start to ack, ms, over acked sends. */
  readonly sendAck: Percentiles;
  /** Send start to the app being handed the message on another device, ms. */
  readonly delivery: Percentiles;
  readonly sends: { readonly total: number; readonly acked: number; readonly unacked: number };
  /** The first problems found per kind, for a person to read. */
  readonly problems: readonly string[];
}

/** Nearest-rank percentiles; all zero for no samples. */
export function percentiles(xs: readonly number[]): Percentiles {
  if (xs.length === 0) return { n: 0, p50: 0, p99: 0, max: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1]! };
}

/** A report of a run that saw no messages (a test suite, a run that could not start). */
export function emptyReport(problems: readonly string[] = []): CheckReport {
  const none = { n: 0, p50: 0, p99: 0, max: 0 };
  return {
    ackedLost: 0,
    duplicates: 0,
    orderViolations: 0,
    gaps: 0,
    reconnect: { ...none, stuck: 0 },
    presence: { expectations: 0, late: 0, never: 0, p99Ms: 0, staleOnline: 0 },
    sendAck: none,
    delivery: none,
    sends: { total: 0, acked: 0, unacked: 0 },
    problems,
  };
}

/** Safety holds: nothing lost, duplicated, reordered or skipped; no device stuck; no stale presence. */
export function invariantsHold(r: CheckReport): boolean {
  return (
    r.ackedLost === 0 &&
    r.duplicates === 0 &&
    r.orderViolations === 0 &&
    r.gaps === 0 &&
    r.reconnect.stuck === 0 &&
    r.presence.staleOnline === 0 &&
    r.presence.never === 0
  );
}

/** Problem lines kept per kind: enough to start a diagnosis, bounded for a 10-minute run. */
const KEEP_PER_KIND = 12;

class Problems {
  readonly lines: string[] = [];
  private readonly kept = new Map<string, number>();

  add(kind: string, text: string): void {
    const n = this.kept.get(kind) ?? 0;
    this.kept.set(kind, n + 1);
    if (n < KEEP_PER_KIND) this.lines.push(`${kind}: ${text}`);
    else if (n === KEEP_PER_KIND) this.lines.push(`${kind}: (more not shown)`);
  }
}

export function check(h: History): CheckReport {
  const problems = new Problems();
  const lost = new Set<string>();
  let duplicates = 0;
  let order = 0;
  let gaps = 0;

  const acked = h.sends.filter((s): s is SendRecord & { ack: NonNullable<SendRecord['ack']> } => s.ack !== undefined);

  // ---- Channel histories: the authority on what sits at each (channel, channel_seq).
  const atChannelSeq = new Map<string, string>();
  const historyIds = new Map<string, Set<string>>();
  const storedAs = new Map<string, Set<string>>(); // sender|client_msg_id -> message ids
  const noteStored = (senderId: string, clientMsgId: string, messageId: string): void => {
    const k = `${senderId}|${clientMsgId}`;
    let s = storedAs.get(k);
    if (!s) storedAs.set(k, (s = new Set()));
    s.add(messageId);
  };
  for (const [channelId, entries] of Object.entries(h.histories)) {
    const ids = new Set<string>();
    historyIds.set(channelId, ids);
    let prev = 0;
    for (const e of entries) {
      if (ids.has(e.messageId)) {
        duplicates++;
        problems.add('duplicate', `history of ${channelId}: ${e.messageId} at a second channel_seq ${e.channelSeq}`);
        continue;
      }
      ids.add(e.messageId);
      noteStored(e.senderId, e.clientMsgId, e.messageId);
      if (e.channelSeq > prev + 1) {
        gaps++;
        problems.add('gap', `history of ${channelId}: channel_seq ${e.channelSeq} after ${prev}`);
      } else if (e.channelSeq <= prev) {
        order++;
        problems.add('order', `history of ${channelId}: channel_seq ${e.channelSeq} after ${prev}`);
      }
      prev = Math.max(prev, e.channelSeq);
      atChannelSeq.set(`${channelId}#${e.channelSeq}`, e.messageId);
    }
  }
  const divergesFromHistory = (channelId: string, channelSeq: number, messageId: string): boolean => {
    const there = atChannelSeq.get(`${channelId}#${channelSeq}`);
    return there !== undefined && there !== messageId;
  };

  // ---- Acks: each names one message, at the place the history has it.
  for (const s of acked) {
    noteStored(s.userId, s.clientMsgId, s.ack.messageId);
    if (h.histories[s.channelId] && !historyIds.get(s.channelId)!.has(s.ack.messageId)) {
      lost.add(s.ack.messageId);
      problems.add('lost', `acked ${s.ack.messageId} (${s.clientMsgId}) missing from the history of ${s.channelId}`);
    }
    if (divergesFromHistory(s.channelId, s.ack.channelSeq, s.ack.messageId)) {
      order++;
      problems.add('order', `ack of ${s.clientMsgId} says ${s.channelId}#${s.ack.channelSeq} is ${s.ack.messageId}; the history has ${atChannelSeq.get(`${s.channelId}#${s.ack.channelSeq}`)}`);
    }
  }

  // ---- Inboxes: gap-free from 1, each message once, each channel in channel order.
  const inboxSeqOf = new Map<string, Map<string, number>>(); // user -> message id -> inbox seq
  const inboxAt = new Map<string, Map<number, string>>(); // user -> inbox seq -> message id
  const inboxHead = new Map<string, number>();
  for (const [userId, entries] of Object.entries(h.inboxes)) {
    const bySeq = new Map<number, string>();
    const byId = new Map<string, number>();
    inboxAt.set(userId, bySeq);
    inboxSeqOf.set(userId, byId);
    let prev = 0;
    const lastInChannel = new Map<string, number>();
    for (const e of entries) {
      if (byId.has(e.messageId)) {
        duplicates++;
        problems.add('duplicate', `inbox of ${userId}: ${e.messageId} at inbox_seq ${byId.get(e.messageId)} and ${e.inboxSeq}`);
        continue;
      }
      byId.set(e.messageId, e.inboxSeq);
      bySeq.set(e.inboxSeq, e.messageId);
      if (e.inboxSeq > prev + 1) {
        gaps++;
        problems.add('gap', `inbox of ${userId}: inbox_seq ${e.inboxSeq} after ${prev}`);
      } else if (e.inboxSeq <= prev) {
        order++;
        problems.add('order', `inbox of ${userId}: inbox_seq ${e.inboxSeq} after ${prev}`);
      }
      prev = Math.max(prev, e.inboxSeq);
      order += channelOrder(lastInChannel, e, `inbox of ${userId}`, problems);
      if (divergesFromHistory(e.channelId, e.channelSeq, e.messageId)) {
        order++;
        problems.add('order', `inbox of ${userId}: ${e.channelId}#${e.channelSeq} is ${e.messageId}; the history has ${atChannelSeq.get(`${e.channelId}#${e.channelSeq}`)}`);
      }
    }
    inboxHead.set(userId, prev);
  }
  for (const s of acked) {
    for (const member of h.members[s.channelId] ?? []) {
      const inbox = inboxSeqOf.get(member);
      if (!inbox) continue; // not read: reported below
      if (!inbox.has(s.ack.messageId)) {
        lost.add(s.ack.messageId);
        problems.add('lost', `acked ${s.ack.messageId} missing from the inbox of member ${member}`);
      }
    }
  }
  for (const userId of new Set(Object.values(h.members).flat())) {
    if (!inboxSeqOf.has(userId)) problems.add('unread', `the inbox of ${userId} was not read at the end`);
  }

  // ---- Devices: what each app was handed.
  const byDevice = new Map<string, DeliveryRecord[]>();
  for (const d of h.deliveries) {
    let l = byDevice.get(d.device);
    if (!l) byDevice.set(d.device, (l = []));
    l.push(d);
  }
  const firstSurfaced = new Map<string, number>(); // device|message -> at
  for (const info of h.devices) {
    const stream = byDevice.get(info.device) ?? [];
    const seen = new Set<string>();
    const lastInChannel = new Map<string, number>();
    let prev = info.startAfterSeq;
    const inbox = inboxAt.get(info.userId);
    for (const d of stream) {
      if (seen.has(d.messageId)) {
        duplicates++;
        problems.add('duplicate', `${info.device} was handed ${d.messageId} again (inbox_seq ${d.inboxSeq})`);
        continue;
      }
      seen.add(d.messageId);
      firstSurfaced.set(`${info.device}|${d.messageId}`, d.atMs);
      if (d.inboxSeq > prev + 1) {
        gaps++;
        problems.add('gap', `${info.device}: inbox_seq ${d.inboxSeq} after ${prev}`);
      } else if (d.inboxSeq <= prev) {
        order++;
        problems.add('order', `${info.device}: inbox_seq ${d.inboxSeq} after ${prev}`);
      }
      prev = Math.max(prev, d.inboxSeq);
      order += channelOrder(lastInChannel, d, info.device, problems);
      if (divergesFromHistory(d.channelId, d.channelSeq, d.messageId)) {
        order++;
        problems.add('order', `${info.device}: ${d.channelId}#${d.channelSeq} is ${d.messageId}; the history has ${atChannelSeq.get(`${d.channelId}#${d.channelSeq}`)}`);
      }
      const there = inbox?.get(d.inboxSeq);
      if (there !== undefined && there !== d.messageId) {
        order++;
        problems.add('order', `${info.device}: inbox_seq ${d.inboxSeq} was ${d.messageId}; the inbox has ${there}`);
      }
    }
    const head = inboxHead.get(info.userId);
    if (head !== undefined && prev < head) {
      gaps++;
      problems.add('gap', `${info.device} ends at inbox_seq ${prev}; its inbox at ${head}`);
    }
  }
  const devicesOf = new Map<string, string[]>();
  for (const info of h.devices) {
    let l = devicesOf.get(info.userId);
    if (!l) devicesOf.set(info.userId, (l = []));
    l.push(info.device);
  }
  const startOf = new Map(h.devices.map((d) => [d.device, d.startAfterSeq]));
  for (const s of acked) {
    for (const member of h.members[s.channelId] ?? []) {
      const seq = inboxSeqOf.get(member)?.get(s.ack.messageId);
      if (seq === undefined) continue; // lost from the inbox: counted above
      for (const device of devicesOf.get(member) ?? []) {
        if (seq > startOf.get(device)! && !firstSurfaced.has(`${device}|${s.ack.messageId}`)) {
          lost.add(s.ack.messageId);
          problems.add('lost', `acked ${s.ack.messageId} (inbox_seq ${seq} of ${member}) never handed to ${device}`);
        }
      }
    }
  }

  // ---- One client_msg_id, one message.
  for (const [k, ids] of storedAs) {
    if (ids.size > 1) {
      duplicates += ids.size - 1;
      problems.add('duplicate', `client_msg_id ${k} stored as ${[...ids].join(', ')}`);
    }
  }

  const reconnect = reconnects(h, problems);
  const presence = presenceFigures(h, problems);

  const sendAck = percentiles(acked.map((s) => s.ack.atMs - s.startedAtMs));
  const startOfSend = new Map(h.sends.map((s) => [`${s.userId}|${s.clientMsgId}`, s.startedAtMs]));
  const deliveryMs: number[] = [];
  for (const d of h.deliveries) {
    if (firstSurfaced.get(`${d.device}|${d.messageId}`) !== d.atMs) continue;
    const started = startOfSend.get(`${d.senderId}|${d.clientMsgId}`);
    if (started !== undefined) deliveryMs.push(d.atMs - started);
  }

  return {
    ackedLost: lost.size,
    duplicates,
    orderViolations: order,
    gaps,
    reconnect,
    presence,
    sendAck,
    delivery: percentiles(deliveryMs),
    sends: { total: h.sends.length, acked: acked.length, unacked: h.sends.length - acked.length },
    problems: problems.lines,
  };
}

/** Counts a message of a channel handed out at or below the channel_seq last handed out there. */
function channelOrder(last: Map<string, number>, e: { channelId: string; channelSeq: number; messageId: string }, where: string, problems: Problems): number {
  const before = last.get(e.channelId);
  last.set(e.channelId, Math.max(before ?? 0, e.channelSeq));
  if (before === undefined || e.channelSeq > before) return 0;
  problems.add('order', `${where}: ${e.channelId} seq ${e.channelSeq} after ${before}`);
  return 1;
}

function reconnects(h: History, problems: Problems): Percentiles & { stuck: number } {
  const byDevice = new Map<string, typeof h.connections[number][]>();
  for (const c of h.connections) {
    let l = byDevice.get(c.device);
    if (!l) byDevice.set(c.device, (l = []));
    l.push(c);
  }
  const durations: number[] = [];
  let stuck = 0;
  for (const [device, records] of byDevice) {
    const sorted = [...records].sort((a, b) => a.atMs - b.atMs);
    // up: connected; outage: lost it, waiting to come back; away: closed on purpose.
    let state: 'up' | 'outage' | 'away' | 'new' = 'new';
    let since = 0;
    for (const c of sorted) {
      if (c.kind === 'welcome') {
        if (state === 'outage') durations.push(c.atMs - since);
        state = 'up';
      } else if (c.intended) {
        state = 'away';
      } else if (state === 'up') {
        state = 'outage';
        since = Math.min(c.atMs, c.sinceMs ?? c.atMs);
      }
    }
    if (state === 'outage') {
      stuck++;
      problems.add('stuck', `${device} lost its connection at ${since} and never came back`);
    }
  }
  return { ...percentiles(durations), stuck };
}

function presenceFigures(h: History, problems: Problems): CheckReport['presence'] {
  const seen = new Map<string, PresenceObservation[]>();
  for (const o of h.presence) {
    const k = `${o.observer}|${o.subject}`;
    let l = seen.get(k);
    if (!l) seen.set(k, (l = []));
    l.push(o);
  }
  for (const l of seen.values()) l.sort((a, b) => a.atMs - b.atMs);
  const took: number[] = [];
  let late = 0;
  let never = 0;
  for (const e of h.expectations) {
    const obs = seen.get(`${e.observer}|${e.subject}`) ?? [];
    const before = obs.filter((o) => o.atMs <= e.fromMs).at(-1);
    const after = obs.find((o) => o.atMs > e.fromMs && o.online === e.online);
    const at = before?.online === e.online ? e.fromMs : after?.atMs;
    if (at === undefined) {
      never++;
      problems.add('presence', `${e.observer} was never shown ${e.subject} ${e.online ? 'online' : 'offline'} after ${e.fromMs} (${e.why})`);
      continue;
    }
    took.push(at - e.fromMs);
    if (at - e.fromMs > e.withinMs) {
      late++;
      problems.add('presence late', `${e.observer} saw ${e.subject} ${e.online ? 'online' : 'offline'} after ${at - e.fromMs} ms, bound ${e.withinMs} ms (${e.why})`);
    }
  }
  let staleOnline = 0;
  for (const w of h.offlineWindows) {
    const obs = seen.get(`${w.observer}|${w.subject}`) ?? [];
    const shownGone = obs.find((o) => !o.online && o.atMs >= w.goneSinceMs)?.atMs;
    if (shownGone === undefined) continue; // never converged: the expectations count it
    for (const o of obs) {
      if (o.online && o.atMs >= Math.max(w.fromMs, shownGone) && o.atMs <= w.toMs) {
        staleOnline++;
        problems.add('stale online', `${w.observer} was shown ${w.subject} online at ${o.atMs} (${o.via}), offline before, while it had no device (${w.why})`);
      }
    }
  }
  return { expectations: h.expectations.length, late, never, p99Ms: percentiles(took).p99, staleOnline };
}

/** `N acked lost, N duplicates, N order violations, N gaps, reconnect p99 X ms` (the contract), plus extras. */
export function summaryLine(r: CheckReport, extras: readonly string[] = []): string {
  const base = `${r.ackedLost} acked lost, ${r.duplicates} duplicates, ${r.orderViolations} order violations, ${r.gaps} gaps, reconnect p99 ${Math.round(r.reconnect.p99)} ms`;
  return [base, ...extras].join(', ');
}

