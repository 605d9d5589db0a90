/**
 * Turns a result file into something to look at: a Markdown page with tables, the goals of the
 * project checked against the figures, and SVG charts (latency percentiles per target, memory
 * per connection, latency against offered rate while stepping up).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ResultEntry } from './scenarios.ts';

export interface ResultFile {
  name: string;
  created_at: string;
  command: string;
  machine: Record<string, unknown>;
  versions: Record<string, string>;
  parameters: Record<string, unknown>;
  results: ResultEntry[];
  failures: { scenario: string; target: string; error: string }[];
  duration_s: number;
}

const COLORS: Record<string, string> = { parley: '#2f6fdf', socketio: '#e0803a', 'uws-raw': '#3a9a5b' };
const PCT_COLORS = ['#9ecae1', '#6baed6', '#3182bd', '#08519c', '#08306b'];
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (n: number | null | undefined, digits = 2): string => (n === null || n === undefined ? '–' : Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(digits));
const kib = (b: number | null | undefined): string => (b === null || b === undefined ? '–' : `${(b / 1024).toFixed(2)} KiB`);
const mib = (b: number | null | undefined): string => (b === null || b === undefined ? '–' : `${(b / 1048576).toFixed(1)} MiB`);

/** Parley's label names its durability, since runs with both are compared side by side. */
function targetLabel(e: ResultEntry): string {
  if (e.target !== 'parley') return e.target;
  const d = /durability=(\w+)/.exec(e.persistence)?.[1];
  const parts = [d, (e.nodes ?? 1) > 1 ? `${e.nodes} nodes` : undefined].filter(Boolean);
  return parts.length ? `parley (${parts.join(', ')})` : 'parley';
}

/** "group (10×100)", "group (10×100, chatter)" for group entries; the scenario name otherwise. */
function scenarioLabel(e: ResultEntry): string {
  if (!e.group_size) return e.scenario;
  return `${e.scenario} (${e.groups}×${e.group_size}${e.chatter ? ', chatter' : ''})`;
}

/** What the group chatter of one entry did, in a sentence. */
function chatterLine(e: ResultEntry): string {
  const c = e.chatter;
  if (!c) return `- ${targetLabel(e)} ${scenarioLabel(e)}${runLabel(e)}: chatter **off** (no read marks, no typing notices)`;
  const parts = [
    `chatter **on**: ${fmt(c.members)} members, each a \`read\` and a \`typing\` every ${fmt(c.every_ms)} ms`,
    `sent ${fmt(c.reads_sent_per_s)} reads/s and ${fmt(c.typing_sent_per_s)} typing/s (full: ${fmt(c.expected_sent_per_s)}/s each)`,
    `received ${fmt(c.receipts_per_s)} read receipts/s and ${fmt(c.typing_notices_per_s)} typing notices/s (at most ${fmt(c.expected_received_per_s)}/s each)`,
  ];
  if (c.reads_skipped) parts.push(`${fmt(c.reads_skipped)} reads not sent (nothing received in the group yet)`);
  if (c.not_open) parts.push(`${fmt(c.not_open)} member-seconds skipped (socket not open)`);
  if (c.slices_dropped) parts.push(`${fmt(c.slices_dropped)} slices dropped (generator more than a second behind)`);
  if (c.errors) parts.push(`${fmt(c.errors)} refused ${esc(JSON.stringify(c.error_codes))}`);
  return `- ${targetLabel(e)} ${scenarioLabel(e)}${runLabel(e)} @ ${fmt(e.offered_rate)}/s: ${parts.join('; ')}`;
}

function runLabel(e: ResultEntry): string {
  const run = (e as ResultEntry & { run?: string }).run;
  return run ? ` · ${run}` : '';
}

function niceLogTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) for (const m of [1, 2, 5]) ticks.push(m * 10 ** e);
  return ticks.filter((t) => t >= min * 0.999 && t <= max * 1.001);
}

/** Grouped bars: one group per entry, one bar per percentile; log-scale milliseconds. */
export function latencySvg(entries: ResultEntry[]): string | undefined {
  const rows = entries.filter((e) => e.latency_ms && e.latency_ms.max > 0);
  if (rows.length === 0) return undefined;
  const keys = ['p50', 'p90', 'p99', 'p999', 'max'] as const;
  const labels = ['p50', 'p90', 'p99', 'p99.9', 'max'];
  const values = rows.flatMap((e) => keys.map((k) => Math.max(0.01, e.latency_ms![k])));
  const lo = 10 ** Math.floor(Math.log10(Math.min(...values)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values)));
  const barW = 14;
  const groupW = keys.length * barW + 26;
  const left = 60;
  const top = 40;
  const plotH = 260;
  const width = Math.max(520, left + rows.length * groupW + 20);
  const height = top + plotH + 120;
  const y = (v: number): number => top + plotH - ((Math.log10(Math.max(lo, v)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${left}" y="20" font-size="14" font-weight="bold">Latency, scheduled send to delivery (ms, log scale)</text>`);
  for (const t of niceLogTicks(lo, hi)) {
    out.push(`<line x1="${left}" x2="${width - 10}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${t >= 1 ? t : t.toPrecision(1)}</text>`);
  }
  rows.forEach((e, gi) => {
    const gx = left + 10 + gi * groupW;
    keys.forEach((k, i) => {
      const v = Math.max(lo, e.latency_ms![k]);
      const yy = y(v);
      out.push(`<rect x="${gx + i * barW}" y="${yy.toFixed(1)}" width="${barW - 2}" height="${(top + plotH - yy).toFixed(1)}" fill="${PCT_COLORS[i]}"><title>${esc(`${e.target} ${e.scenario} ${labels[i]}: ${e.latency_ms![k]} ms`)}</title></rect>`);
    });
    const cx = gx + (keys.length * barW) / 2;
    out.push(`<rect x="${gx}" y="${top + plotH + 4}" width="${keys.length * barW - 2}" height="4" fill="${COLORS[e.target] ?? '#888'}"/>`);
    const label = targetLabel(e);
    const sub = `${e.scenario}${e.offered_rate ? ` ${fmt(e.offered_rate)}/s` : ''}`;
    out.push(`<text transform="translate(${cx},${top + plotH + 16}) rotate(35)" font-weight="bold">${esc(label)}</text>`);
    out.push(`<text transform="translate(${cx - 8},${top + plotH + 28}) rotate(35)" fill="#555">${esc(sub)}</text>`);
  });
  labels.forEach((l, i) => {
    out.push(`<rect x="${width - 70}" y="${top + i * 16}" width="10" height="10" fill="${PCT_COLORS[i]}"/><text x="${width - 55}" y="${top + 9 + i * 16}">${l}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Memory per idle connection (bars) and RSS against sessions (lines), per target. */
export function memorySvg(entries: ResultEntry[]): string | undefined {
  const rows = entries.filter((e) => e.scenario === 'connections' && e.rss_per_session_bytes !== null);
  if (rows.length === 0) return undefined;
  const width = 720;
  const height = 330;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  // Left: bars of bytes per session.
  const left = 60;
  const top = 40;
  const plotH = 220;
  const maxKib = Math.max(4.5, ...rows.map((e) => (e.rss_per_session_bytes ?? 0) / 1024)) * 1.1;
  const yb = (k: number): number => top + plotH - (k / maxKib) * plotH;
  out.push(`<text x="${left}" y="20" font-size="14" font-weight="bold">Server memory per idle session (KiB)</text>`);
  for (let k = 0; k <= maxKib; k += maxKib > 40 ? 10 : maxKib > 12 ? 4 : 1) {
    out.push(`<line x1="${left}" x2="${left + 260}" y1="${yb(k).toFixed(1)}" y2="${yb(k).toFixed(1)}" stroke="#eee"/><text x="${left - 6}" y="${(yb(k) + 4).toFixed(1)}" text-anchor="end">${k}</text>`);
  }
  out.push(`<line x1="${left}" x2="${left + 260}" y1="${yb(4).toFixed(1)}" y2="${yb(4).toFixed(1)}" stroke="#c00" stroke-dasharray="4 3"/><text x="${left + 262}" y="${(yb(4) + 4).toFixed(1)}" fill="#c00">4 KiB goal</text>`);
  rows.forEach((e, i) => {
    const k = (e.rss_per_session_bytes ?? 0) / 1024;
    const x = left + 20 + i * 80;
    out.push(`<rect x="${x}" y="${yb(Math.max(0, k)).toFixed(1)}" width="50" height="${(top + plotH - yb(Math.max(0, k))).toFixed(1)}" fill="${COLORS[e.target] ?? '#888'}"/>`);
    out.push(`<text x="${x + 25}" y="${(yb(Math.max(0, k)) - 4).toFixed(1)}" text-anchor="middle">${k.toFixed(2)}</text>`);
    out.push(`<text x="${x + 25}" y="${top + plotH + 16}" text-anchor="middle">${esc(e.target)}</text>`);
    out.push(`<text x="${x + 25}" y="${top + plotH + 30}" text-anchor="middle" fill="#555">${fmt(e.sessions)} sess.</text>`);
    if ((e.nodes ?? 1) > 1) out.push(`<text x="${x + 25}" y="${top + plotH + 44}" text-anchor="middle" fill="#555">${e.nodes} nodes</text>`);
  });
  // Right: RSS (MiB) against sessions.
  const l2 = 400;
  const w2 = 290;
  const pts = rows.map((e) => ({ e, pts: [{ s: 0, rss: e.server_rss_before_bytes }, ...(e.levels ?? []).map((l) => ({ s: l.connected, rss: l.rss_bytes }))] }));
  const maxS = Math.max(1, ...pts.flatMap((p) => p.pts.map((x) => x.s)));
  const maxR = Math.max(1, ...pts.flatMap((p) => p.pts.map((x) => x.rss))) / 1048576;
  const xs = (s: number): number => l2 + (s / maxS) * w2;
  const ys = (r: number): number => top + plotH - (r / 1048576 / maxR) * plotH;
  out.push(`<text x="${l2}" y="${top - 8}" font-weight="bold">RSS (MiB) against sessions</text>`);
  out.push(`<line x1="${l2}" x2="${l2 + w2}" y1="${top + plotH}" y2="${top + plotH}" stroke="#999"/><line x1="${l2}" x2="${l2}" y1="${top}" y2="${top + plotH}" stroke="#999"/>`);
  out.push(`<text x="${l2 + w2}" y="${top + plotH + 16}" text-anchor="end">${fmt(maxS)} sessions</text><text x="${l2 - 4}" y="${top + 8}" text-anchor="end">${maxR.toFixed(0)}</text>`);
  for (const p of pts) {
    const d = p.pts.map((q, i) => `${i ? 'L' : 'M'}${xs(q.s).toFixed(1)},${ys(q.rss).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${COLORS[p.e.target] ?? '#888'}" stroke-width="2"/>`);
    for (const q of p.pts) out.push(`<circle cx="${xs(q.s).toFixed(1)}" cy="${ys(q.rss).toFixed(1)}" r="3" fill="${COLORS[p.e.target] ?? '#888'}"><title>${esc(`${p.e.target}: ${q.s} sessions, ${(q.rss / 1048576).toFixed(1)} MiB`)}</title></circle>`);
  }
  out.push('</svg>');
  return out.join('\n');
}

/** A cluster run, node by node: sessions up (bars, with discovery's assignment and the per-process cap) and RSS before/after. */
export function nodesSvg(entries: ResultEntry[]): string | undefined {
  const e = entries.find((x) => x.scenario === 'connections' && x.per_node && x.per_node.length > 1);
  if (!e) return undefined;
  const nodes = e.per_node!;
  const left = 70;
  const top = 56;
  const plotH = 200;
  const barW = Math.max(10, Math.min(36, Math.floor(560 / nodes.length) - 8));
  const step = barW + 8;
  const plotW = Math.max(330, nodes.length * step + 10);
  const width = left + plotW * 2 + 120;
  const height = top + plotH + 70;
  const cap = 19_000;
  const maxS = Math.max(cap * 1.05, ...nodes.map((n) => Math.max(n.sessions_assigned, n.sessions_up))) * 1.05;
  const maxR = Math.max(1, ...nodes.map((n) => Math.max(n.rss_after_bytes, n.rss_before_bytes))) / 1048576 * 1.1;
  const ys = (v: number): number => top + plotH - (v / maxS) * plotH;
  const yr = (b: number): number => top + plotH - (b / 1048576 / maxR) * plotH;
  const l2 = left + plotW + 80;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${left}" y="20" font-size="14" font-weight="bold">${esc(`${fmt(e.connected)} sessions over ${nodes.length} nodes, placed by GET /v1/servers`)}</text>`);
  out.push(`<text x="${left}" y="${top - 10}" font-weight="bold">Sessions per node (bar: up after the hold; tick: placed)</text>`);
  for (const v of [0, 5_000, 10_000, 15_000]) out.push(`<line x1="${left}" x2="${left + plotW}" y1="${ys(v).toFixed(1)}" y2="${ys(v).toFixed(1)}" stroke="#eee"/><text x="${left - 6}" y="${(ys(v) + 4).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`);
  out.push(`<line x1="${left}" x2="${left + plotW}" y1="${ys(cap).toFixed(1)}" y2="${ys(cap).toFixed(1)}" stroke="#c00" stroke-dasharray="4 3"/><text x="${left - 6}" y="${(ys(cap) + 4).toFixed(1)}" text-anchor="end" fill="#c00">19,000</text>`);
  nodes.forEach((n, i) => {
    const x = left + 6 + i * step;
    out.push(`<rect x="${x}" y="${ys(n.sessions_up).toFixed(1)}" width="${barW}" height="${(top + plotH - ys(n.sessions_up)).toFixed(1)}" fill="${COLORS.parley}"><title>${esc(`${n.node_id}: ${n.sessions_up} up, ${n.sessions_assigned} placed, node counts ${n.server_connections ?? '?'}`)}</title></rect>`);
    out.push(`<line x1="${x - 2}" x2="${x + barW + 2}" y1="${ys(n.sessions_assigned).toFixed(1)}" y2="${ys(n.sessions_assigned).toFixed(1)}" stroke="#000" stroke-width="2"/>`);
    out.push(`<text x="${x + barW / 2}" y="${top + plotH + 14}" text-anchor="middle">${esc(n.node_id)}</text>`);
  });
  out.push(`<text x="${l2}" y="${top - 10}" font-weight="bold">RSS per node, MiB (light: before, dark: after)</text>`);
  for (let k = 0; k <= 4; k++) {
    const v = (maxR / 4) * k;
    out.push(`<line x1="${l2}" x2="${l2 + plotW}" y1="${yr(v * 1048576).toFixed(1)}" y2="${yr(v * 1048576).toFixed(1)}" stroke="#eee"/><text x="${l2 - 6}" y="${(yr(v * 1048576) + 4).toFixed(1)}" text-anchor="end">${v.toFixed(0)}</text>`);
  }
  nodes.forEach((n, i) => {
    const x = l2 + 6 + i * step;
    out.push(`<rect x="${x}" y="${yr(n.rss_after_bytes).toFixed(1)}" width="${barW}" height="${(top + plotH - yr(n.rss_after_bytes)).toFixed(1)}" fill="#08519c"><title>${esc(`${n.node_id}: ${(n.rss_before_bytes / 1048576).toFixed(1)} → ${(n.rss_after_bytes / 1048576).toFixed(1)} MiB`)}</title></rect>`);
    out.push(`<rect x="${x}" y="${yr(n.rss_before_bytes).toFixed(1)}" width="${barW}" height="${(top + plotH - yr(n.rss_before_bytes)).toFixed(1)}" fill="#9ecae1"/>`);
    out.push(`<text x="${x + barW / 2}" y="${top + plotH + 14}" text-anchor="middle">${esc(n.node_id)}</text>`);
  });
  out.push(`<text x="${left}" y="${top + plotH + 40}" fill="#555">${esc(`RSS of all nodes: ${mib(e.server_rss_before_bytes)} before, ${mib(e.server_rss_bytes)} after; ${kib(e.rss_per_session_bytes)} per session`)}</text>`);
  out.push('</svg>');
  return out.join('\n');
}

/** A cluster connections run over time: sessions up (area) and CPU (lines), connect phase then hold. */
export function timelineSvg(entries: ResultEntry[]): string | undefined {
  const e = entries.find((x) => x.scenario === 'connections' && (x.nodes ?? 1) > 1 && x.timeline && x.timeline.length > 1);
  if (!e) return undefined;
  const pts = e.timeline!;
  const left = 70;
  const top = 40;
  const plotW = 600;
  const plotH = 220;
  const width = left + plotW + 230;
  const height = top + plotH + 50;
  const maxT = Math.max(5, pts.at(-1)!.t_s + 5);
  const maxS = Math.max(1, ...pts.map((p) => p.sessions_up)) * 1.1;
  const x = (t: number): number => left + (t / maxT) * plotW;
  const ys = (v: number): number => top + plotH - (v / maxS) * plotH;
  const yc = (pct: number): number => top + plotH - (Math.min(200, pct) / 200) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${left}" y="20" font-size="14" font-weight="bold">${esc(`Sessions up and CPU over time (${e.nodes} nodes; machine has 2 cores = 200 %)`)}</text>`);
  const hold = pts.find((p) => p.phase === 'hold');
  if (hold) {
    out.push(`<rect x="${x(hold.t_s).toFixed(1)}" y="${top}" width="${(x(maxT) - x(hold.t_s)).toFixed(1)}" height="${plotH}" fill="#f3f3f3"/>`);
    out.push(`<text x="${(x(hold.t_s) + 4).toFixed(1)}" y="${top + 12}" fill="#555">hold</text>`);
  }
  for (let k = 0; k <= 4; k++) {
    const pct = k * 50;
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${yc(pct).toFixed(1)}" y2="${yc(pct).toFixed(1)}" stroke="#e5e5e5"/><text x="${left + plotW + 4}" y="${(yc(pct) + 4).toFixed(1)}">${pct} %</text>`);
    const sv = (maxS / 1.1 / 4) * k;
    out.push(`<text x="${left - 6}" y="${(ys(sv) + 4).toFixed(1)}" text-anchor="end">${fmt(Math.round(sv))}</text>`);
  }
  out.push(`<path d="M${x(0)},${ys(0)} ${pts.map((p) => `L${x(p.t_s).toFixed(1)},${ys(p.sessions_up).toFixed(1)}`).join(' ')} L${x(pts.at(-1)!.t_s).toFixed(1)},${ys(0)} Z" fill="#c6dbef" stroke="none"/>`);
  const line = (f: (p: (typeof pts)[number]) => number, color: string): void => {
    out.push(`<path d="${pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.t_s).toFixed(1)},${yc(f(p)).toFixed(1)}`).join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`);
  };
  line((p) => p.machine_cpu_pct * 2, '#000');
  line((p) => p.server_cpu_pct, COLORS.parley!);
  line((p) => p.generator_cpu_pct, '#e0803a');
  line((p) => p.other_cpu_pct, '#999');
  for (let i = 0; i <= 4; i++) {
    const t = (maxT * i) / 4;
    out.push(`<text x="${x(t).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle">${Math.round(t)} s</text>`);
  }
  const legend: [string, string][] = [['#c6dbef', 'sessions up (left axis)'], ['#000', 'machine CPU'], [COLORS.parley!, 'all nodes CPU'], ['#e0803a', 'generator CPU'], ['#999', 'other processes']];
  legend.forEach(([c, l], i) => out.push(`<rect x="${left + plotW + 50}" y="${top + 40 + i * 16}" width="10" height="10" fill="${c}"/><text x="${left + plotW + 64}" y="${top + 49 + i * 16}">${esc(l)}</text>`));
  out.push(`<text x="${left}" y="${top + plotH + 36}" fill="#555">seconds since the first connection was started</text>`);
  out.push('</svg>');
  return out.join('\n');
}

/** p99 against offered rate while stepping up, one line per target and scenario. */
export function stepsSvg(entries: ResultEntry[]): string | undefined {
  const rows = entries.filter((e) => e.steps && e.steps.length > 0);
  if (rows.length === 0) return undefined;
  const width = 720;
  const height = 340;
  const left = 70;
  const top = 40;
  const plotW = 520;
  const plotH = 240;
  const all = rows.flatMap((e) => e.steps!);
  const maxRate = Math.max(...all.map((s) => s.offered_rate));
  const lat = all.map((s) => Math.max(0.1, s.latency_ms.p99));
  const lo = 10 ** Math.floor(Math.log10(Math.min(...lat)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...lat, 60)));
  const x = (r: number): number => left + (r / maxRate) * plotW;
  const y = (v: number): number => top + plotH - ((Math.log10(Math.max(lo, v)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${left}" y="20" font-size="14" font-weight="bold">p99 latency (ms, log) against offered rate (msg/s); hollow = step did not hold</text>`);
  for (const t of niceLogTicks(lo, hi)) out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#eee"/><text x="${left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${t}</text>`);
  out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(50).toFixed(1)}" y2="${y(50).toFixed(1)}" stroke="#c00" stroke-dasharray="4 3"/><text x="${left + plotW + 4}" y="${(y(50) + 4).toFixed(1)}" fill="#c00">50 ms</text>`);
  for (let i = 0; i <= 4; i++) {
    const r = (maxRate * i) / 4;
    out.push(`<text x="${x(r).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle">${fmt(Math.round(r))}</text>`);
  }
  rows.forEach((e, i) => {
    const steps = [...e.steps!].sort((a, b) => a.offered_rate - b.offered_rate);
    const color = COLORS[e.target] ?? '#888';
    const dash = e.scenario === 'group' ? ' stroke-dasharray="6 3"' : '';
    out.push(`<path d="${steps.map((s, j) => `${j ? 'L' : 'M'}${x(s.offered_rate).toFixed(1)},${y(s.latency_ms.p99).toFixed(1)}`).join(' ')}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
    for (const s of steps) {
      out.push(`<circle cx="${x(s.offered_rate).toFixed(1)}" cy="${y(s.latency_ms.p99).toFixed(1)}" r="4" fill="${s.held ? color : 'white'}" stroke="${color}" stroke-width="2"><title>${esc(`${e.target} ${e.scenario} @ ${s.offered_rate}/s: p99 ${s.latency_ms.p99} ms${s.why_not ? ` (${s.why_not})` : ''}`)}</title></circle>`);
    }
    out.push(`<rect x="${left + plotW + 10}" y="${top + 30 + i * 16}" width="10" height="10" fill="${color}"/><text x="${left + plotW + 25}" y="${top + 39 + i * 16}">${esc(`${e.target} ${e.scenario === 'group' ? (e.chatter ? 'group + chatter' : 'group') : '1:1'}`)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

function find(results: ResultEntry[], scenario: string, target: string): ResultEntry | undefined {
  return results.find((r) => r.scenario === scenario && r.target === target);
}

/** The project's targets, checked where this run has the figures. */
function goals(all: ResultEntry[]): string[] {
  const out: string[] = [];
  const durabilities = [...new Set(all.filter((e) => e.target === 'parley').map((e) => /durability=(\w+)/.exec(e.persistence)?.[1] ?? ''))];
  for (const d of durabilities.length ? durabilities : ['']) {
    const results = all.filter((e) => e.target !== 'parley' || (/durability=(\w+)/.exec(e.persistence)?.[1] ?? '') === d);
    const rows = goalsFor(results);
    if (rows.length === 0) continue;
    if (durabilities.length > 1) out.push(`| **Parley with durability=${d}** | | |`);
    out.push(...rows);
  }
  return out.length ? ['| Goal | Measured | |', '|---|---|---|', ...out] : [];
}

function goalsFor(results: ResultEntry[]): string[] {
  const lines: string[] = [];
  const ok = (b: boolean): string => (b ? 'met' : '**not met**');
  const conn = find(results, 'connections', 'parley');
  if (conn && conn.rss_per_session_bytes !== null && (conn.nodes ?? 1) > 1) {
    const up = conn.all_up ? 'all up' : `${fmt(conn.connected)} of ${fmt(conn.sessions)} connected, ${fmt(conn.closed)} closed`;
    const hb = conn.heartbeats;
    const onTime = hb !== null && hb.due_per_s !== undefined ? hb.per_s >= 0.95 * hb.due_per_s : true;
    const held = conn.held ?? (conn.all_up === true && onTime);
    const beats = hb ? `; ${fmt(hb.per_s)} heartbeats/s sent${hb.due_per_s !== undefined ? ` of ${fmt(hb.due_per_s)} due` : ''}` : '';
    const why = conn.held_why_not && conn.held_why_not.length ? ` (did not hold: ${esc(conn.held_why_not.join('; '))})` : '';
    lines.push(
      `| Parley: ≥ 250,000 authenticated sessions across ${conn.nodes} nodes, placed by discovery, all up after ${fmt(conn.duration_s)} s (5 s heartbeats) | ${fmt(conn.sessions)} sessions: ${up}${beats}${held ? '; held' : ''} | ${ok(held && (conn.sessions ?? 0) >= 250_000)}${(conn.sessions ?? 0) < 250_000 ? ' (run had fewer than 250,000)' : ''}${why} |`,
    );
  } else if (conn && conn.rss_per_session_bytes !== null) {
    lines.push(`| Parley: ${fmt(conn.sessions)} sessions all up after the hold | ${conn.all_up ? 'all up' : `${conn.closed} closed`} | ${ok(conn.all_up === true && (conn.sessions ?? 0) >= 19_000)}${(conn.sessions ?? 0) < 19_000 ? ' (run had fewer than 19,000)' : ''} |`);
    lines.push(`| Parley: ≤ 4 KiB server RSS per idle session | ${kib(conn.rss_per_session_bytes)} | ${ok(conn.rss_per_session_bytes <= 4096)} |`);
  }
  // The message-path issue's goals: durable Parley against relays that store nothing, same run.
  for (const e of results.filter((r) => r.scenario === 'one-to-one' && r.target === 'parley' && r.offered_rate === 1_000)) {
    lines.push(`| Parley 1:1 at 1,000 msg/s: p99 ≤ 10 ms, nothing refused (${e.persistence.split(' (')[0]}) | ${fmt(e.latency_ms?.p99)} ms, ${e.errors} errors | ${ok((e.latency_ms?.p99 ?? Infinity) <= 10 && e.errors === 0)} |`);
  }
  const mp = find(results, 'max-throughput', 'parley');
  const ms = find(results, 'max-throughput', 'socketio');
  if (mp && ms && ms.max_rate) lines.push(`| Parley 1:1 max-throughput (p99 ≤ 50 ms) ≥ 0.5x Socket.IO | ${((mp.max_rate ?? 0) / ms.max_rate).toFixed(2)}x (${fmt(mp.max_rate)} vs ${fmt(ms.max_rate)}) | ${ok((mp.max_rate ?? 0) >= 0.5 * ms.max_rate)} |`);
  const gp = find(results, 'group', 'parley');
  const gs = find(results, 'group', 'socketio');
  if (gp && gs && gs.deliveries_per_s) lines.push(`| Parley group of 100 deliveries/s (p99 ≤ 100 ms) ≥ 1.0x Socket.IO | ${((gp.deliveries_per_s ?? 0) / gs.deliveries_per_s).toFixed(2)}x (${fmt(gp.deliveries_per_s)} vs ${fmt(gs.deliveries_per_s)}) | ${ok((gp.deliveries_per_s ?? 0) >= gs.deliveries_per_s)} |`);
  const cs = find(results, 'connections', 'socketio');
  if (conn && cs && cs.rss_per_session_bytes && conn.rss_per_session_bytes !== null) {
    lines.push(`| Parley ≤ 1/5 of Socket.IO memory per connection | ${(conn.rss_per_session_bytes / cs.rss_per_session_bytes).toFixed(2)} of it (${kib(conn.rss_per_session_bytes)} vs ${kib(cs.rss_per_session_bytes)}) | ${ok(conn.rss_per_session_bytes * 5 <= cs.rss_per_session_bytes)} |`);
  }
  return lines;
}

/** The node-by-node part of a cluster connections run. */
function clusterSection(e: ResultEntry): string[] {
  const c = e.cluster;
  const md: string[] = [];
  md.push(`### ${targetLabel(e)}${runLabel(e)}: node by node`, '');
  if (c) {
    md.push(
      `${c.nodes} parleyd processes on this box with \`--etcd\` (one private etcd), cluster prefix \`${c.prefix}\`, store: ${c.store}, secret: ${c.secret}; every node listed all ${c.nodes} ${c.formed_s} s after the first was spawned. ` +
        `Each session asked ${c.discovery ? `\`${c.discovery.endpoint}\` of one node (the nodes in turn) and connected to the first server of the answer (${fmt(c.discovery.asks)} asks, ${fmt(c.discovery.failures)} failed, ${fmt(c.discovery.retries ?? 0)} asked again after a reset kept-alive socket, mean ${fmt(c.discovery.mean_ms)} ms, max ${fmt(c.discovery.max_ms)} ms, queueing in the generator included)` : 'discovery (no figures)'}. ` +
        `Tokens: ${c.tokens}.`,
      '',
    );
    if (c.spread) md.push(`Spread of sessions up: min ${fmt(c.spread.min)}, max ${fmt(c.spread.max)}, mean ${fmt(c.spread.mean)} per node (max/mean ${c.spread.max_over_mean}). etcd during the hold: ${fmt(c.etcd_cpu_pct, 1)}% CPU, ${mib(c.etcd_rss_bytes)} RSS (not in the server figures).`, '');
  }
  md.push('| node | placed by discovery | up after hold | closed by the node | node\'s own count | RSS before | RSS after | RSS per session | CPU % (hold) | event loop CPU % avg / peak | /healthz p99 / max (ms) |');
  md.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const n of e.per_node!) {
    md.push(`| ${n.node_id} | ${fmt(n.sessions_assigned)} | ${fmt(n.sessions_up)} | ${fmt(n.sessions_closed ?? 0)} | ${fmt(n.server_connections)} | ${mib(n.rss_before_bytes)} | ${mib(n.rss_after_bytes)} | ${kib(n.rss_per_session_bytes)} | ${fmt(n.cpu_pct, 1)} | ${fmt(n.main_thread_cpu_pct, 1)} / ${fmt(n.main_thread_cpu_peak_pct, 1)} | ${n.healthz_probe_ms ? `${fmt(n.healthz_probe_ms.p99)} / ${fmt(n.healthz_probe_ms.max)}` : '–'} |`);
  }
  const sum = (f: (n: NonNullable<ResultEntry['per_node']>[number]) => number): number => e.per_node!.reduce((a, n) => a + f(n), 0);
  md.push(`| **all** | ${fmt(sum((n) => n.sessions_assigned))} | ${fmt(sum((n) => n.sessions_up))} | ${fmt(sum((n) => n.sessions_closed ?? 0))} | ${fmt(sum((n) => n.server_connections ?? 0))} | ${mib(sum((n) => n.rss_before_bytes))} | ${mib(sum((n) => n.rss_after_bytes))} | ${kib(e.rss_per_session_bytes)} | ${fmt(e.server_cpu_pct, 1)} | | |`);
  md.push('');
  if (e.rss_timeline && e.rss_timeline.length > 1) md.push(`RSS of all nodes during the hold: ${e.rss_timeline.map(([s, b]) => `${s} s ${mib(b)}`).join(', ')}.`, '');
  if (e.timeline && e.timeline.length > 1) {
    // Every 5 s when short; every 15 s (every third row) when long.
    const every = e.timeline.length > 48 ? 3 : 1;
    md.push(`<details><summary>Over time, every ${every * 5} s (CPU in % of one core; the machine has 2)</summary>`, '');
    md.push('| s | phase | sessions up | all nodes CPU % | busiest event loop % | generator CPU % | kernel irq/softirq % | other processes % | machine % of all cores | RSS all nodes | slowest /healthz (ms) |');
    md.push('|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    e.timeline.forEach((p, i) => {
      if (i % every !== 0 && i !== e.timeline!.length - 1) return;
      md.push(`| ${p.t_s} | ${p.phase} | ${fmt(p.sessions_up)} | ${fmt(p.server_cpu_pct, 1)} | ${fmt(p.main_thread_cpu_pct, 1)} | ${fmt(p.generator_cpu_pct, 1)} | ${fmt(p.irq_cpu_pct, 1)} | ${fmt(p.other_cpu_pct, 1)} | ${fmt(p.machine_cpu_pct, 1)} | ${mib(p.server_rss_bytes)} | ${fmt(p.healthz_probe_max_ms)} |`);
    });
    md.push('', '</details>', '');
  }
  return md;
}

/** Warnings after the measured part (forced GCs while reading memory, closing every session at once). */
function afterHold(e: ResultEntry): string {
  const a = e.server_log_after_hold;
  if (!a) return '';
  const part = (name: string, l: ResultEntry['server_log']): string =>
    l.warn + l.error > 0 ? `${name}: ${l.warn} warnings, ${l.error} errors ${esc(JSON.stringify(l.byMessage))}` : '';
  const parts = [part('while memory was read (a forced full GC in every node)', a.memory_reading), part('while every session was closed at once', a.closing)].filter(Boolean);
  return parts.length ? ` — after the hold, ${parts.join('; ')}` : '';
}

export function writeReport(file: ResultFile, mdPath: string, preface: string[] = []): string[] {
  const written: string[] = [];
  const stem = mdPath.replace(/\.md$/, '');
  const charts: { title: string; file: string }[] = [];
  const add = (svg: string | undefined, suffix: string, title: string): void => {
    if (!svg) return;
    const path = `${stem}.${suffix}.svg`;
    writeFileSync(path, svg);
    written.push(path);
    charts.push({ title, file: basename(path) });
  };
  add(latencySvg(file.results), 'latency', 'Latency percentiles per target');
  add(memorySvg(file.results), 'memory', 'Memory per connection');
  add(stepsSvg(file.results), 'steps', 'Latency against offered rate');
  add(nodesSvg(file.results), 'nodes', 'Sessions and memory per node');
  add(timelineSvg(file.results), 'timeline', 'Sessions up and CPU over time');

  const r = file.results;
  const md: string[] = [];
  md.push(`# Parley benchmark: ${file.name}`, '');
  md.push(`${file.created_at} · ${file.duration_s} s · \`${file.command}\``, '');
  md.push(
    `Machine: ${file.machine.cpu_model} × ${file.machine.cores} cores, ${mib(file.machine.memory_bytes as number)}, Linux ${file.machine.kernel}, open files ${file.machine.open_files_limit}, load average at start ${(file.machine.load_avg_at_start as number[]).join(' ')}.`,
    '',
  );
  md.push(`Versions: ${Object.entries(file.versions).map(([k, v]) => `${k} ${v}`).join(', ')}.`, '');
  md.push(...preface);
  const goalLines = goals(r);
  if (file.parameters.scenario === 'smoke') {
    md.push('> Smoke run: sizes far below the conditions of the goals. The figures show that every part of the harness works against every target, not how fast anything is.', '');
  } else if (goalLines.length) md.push('## Goals', '', ...goalLines, '');
  for (const c of charts) md.push(`![${c.title}](${c.file})`, '');

  const msg = r.filter((e) => e.scenario !== 'connections');
  if (msg.length) {
    md.push('## Messaging', '');
    md.push('CPU figures are % of one core (this machine has ' + String(file.machine.cores) + '); "other jobs" is what processes outside the benchmark used meanwhile.', '');
    md.push('Latency runs from each message\'s scheduled send time (open loop) to its delivery at a recipient; messages not delivered by the end of the drain count as timeouts and enter the percentiles at the time they had waited.', '');
    md.push('| scenario | target | offered/s | sent | delivered / expected | errors | timeouts | p50 | p90 | p99 | p99.9 | max (ms) | max rate | deliveries/s | server CPU % (main / next thread) | generator CPU % | machine % | other jobs CPU % | server RSS |');
    md.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const e of msg) {
      const l = e.latency_ms;
      md.push(
        `| ${scenarioLabel(e)}${runLabel(e)} | ${targetLabel(e)} | ${fmt(e.offered_rate)} | ${fmt(e.sent)} | ${fmt(e.delivered)} / ${fmt(e.expected)} | ${fmt(e.errors)} | ${fmt(e.timeouts)} | ${fmt(l?.p50)} | ${fmt(l?.p90)} | ${fmt(l?.p99)} | ${fmt(l?.p999)} | ${fmt(l?.max)} | ${fmt(e.max_rate)} | ${fmt(e.deliveries_per_s)} | ${fmt(e.server_cpu_pct, 1)} (${fmt(e.server_main_thread_cpu_pct, 1)} / ${fmt(e.server_other_threads_cpu_pct?.[0] ?? 0, 1)}) | ${fmt(e.generator_cpu_pct, 1)} | ${fmt(e.machine_cpu_pct, 1)} | ${fmt(e.other_cpu_pct, 1)} | ${mib(e.server_rss_bytes)} |`,
      );
    }
    md.push('');
    const acks = msg.filter((e) => e.ack_latency_ms);
    if (acks.length) {
      md.push('Parley `send_ack` (message durable in the channel history; every member gets it), from scheduled send:', '');
      for (const e of acks) md.push(`- ${targetLabel(e)} ${e.scenario} @ ${fmt(e.offered_rate)}/s: p50 ${fmt(e.ack_latency_ms!.p50)} ms, p99 ${fmt(e.ack_latency_ms!.p99)} ms, max ${fmt(e.ack_latency_ms!.max)} ms`);
      md.push('');
    }
    const groupsWithChatterField = msg.filter((e) => e.scenario === 'group' && e.chatter !== undefined);
    if (groupsWithChatterField.length) {
      md.push(
        'Group chatter (`--group-chatter`, Parley only): read marks and typing notices from every member once a second, spread over the second, while each run sends; the read receipts and typing notices members get back are counted apart, are not deliveries and do not enter the latency. Rates are per second of the measured run (what arrives while it drains included):',
        '',
      );
      for (const e of groupsWithChatterField) md.push(chatterLine(e));
      md.push('');
    }
    for (const e of msg.filter((x) => x.steps)) {
      const chat = e.steps!.some((s) => s.chatter);
      md.push(`<details><summary>${targetLabel(e)} ${scenarioLabel(e)}${runLabel(e)}: ${e.steps!.length} steps, highest that held ${fmt(e.max_rate)}/s</summary>`, '');
      md.push(
        `| offered/s | delivered / expected | errors | timeouts | p50 | p99 | max | send lag p99 | server CPU % (main / next thread) | generator CPU % | other jobs CPU % |${chat ? ' receipts/s | typing notices/s |' : ''} held |`,
        `|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|${chat ? '---:|---:|' : ''}---|`,
      );
      for (const s of e.steps!) {
        const c = chat ? ` ${fmt(s.chatter?.receipts_per_s)} | ${fmt(s.chatter?.typing_notices_per_s)} |` : '';
        md.push(`| ${fmt(s.offered_rate)} | ${fmt(s.delivered)} / ${fmt(s.expected)} | ${fmt(s.errors)} | ${fmt(s.timeouts)} | ${fmt(s.latency_ms.p50)} | ${fmt(s.latency_ms.p99)} | ${fmt(s.latency_ms.max)} | ${fmt(s.send_lag_p99_ms)} | ${fmt(s.server_cpu_pct, 1)} (${fmt(s.server_main_thread_cpu_pct, 1)} / ${fmt(s.server_other_threads_cpu_pct?.[0] ?? 0, 1)}) | ${fmt(s.generator_cpu_pct, 1)} | ${fmt(s.other_cpu_pct, 1)} |${c} ${s.held ? 'yes' : `no: ${esc(s.why_not ?? '')}`} |`);
      }
      md.push('', '</details>', '');
    }
  }
  const conns = r.filter((e) => e.scenario === 'connections');
  if (conns.length) {
    md.push('## Connections', '');
    md.push(
      'Authenticated idle sessions (Parley: hello with a token; Socket.IO: namespace connect; raw uWS: open), each heartbeating every 5 s and held for the hold time. RSS per session = (server RSS after the hold − RSS before connecting) / sessions, both read after forcing a full GC in the server over its inspector (where `gc` says so); "no GC" is the same with the after-reading taken first, garbage included.',
      '',
    );
    md.push('| target | sessions | up after hold | connect rate/s | RSS before | RSS after | RSS per session | (no GC) | JS heap per session | heartbeats/s | server CPU % during hold | /healthz probe p99 |');
    md.push('|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const e of conns) {
      md.push(
        `| ${(e.nodes ?? 1) > 1 ? targetLabel(e) : e.target} | ${fmt(e.sessions)} | ${e.all_up ? 'all' : `${fmt(e.connected)} connected, ${e.closed} closed`} | ${fmt(e.connect_rate_per_s)} | ${mib(e.server_rss_before_bytes)} | ${mib(e.server_rss_bytes)} | ${kib(e.rss_per_session_bytes)} | ${kib(e.rss_per_session_no_gc_bytes)} | ${kib(e.heap_per_session_bytes)} | ${fmt(e.heartbeats?.per_s)} | ${fmt(e.server_cpu_pct, 1)} | ${fmt(e.healthz_probe_ms?.p99)} ms |`,
      );
    }
    md.push('');
    for (const e of conns.filter((x) => x.levels && x.levels.length > 1)) {
      md.push(`${e.target} by level: ${e.levels!.map((l) => `${fmt(l.sessions)} → ${mib(l.rss_bytes)} (${kib(l.rss_per_session_bytes)}/session, ${fmt(l.connect_rate_per_s)} connects/s)`).join('; ')}.`, '');
    }
    for (const e of conns.filter((x) => x.per_node && x.per_node.length > 1)) md.push(...clusterSection(e));
  }
  const prov = r.filter((e) => e.provision);
  if (prov.length) {
    md.push('## Provisioning', '');
    for (const e of prov) md.push(`- ${e.scenario}: ${fmt(e.provision!.users)} users and tokens by \`parleyctl users provision\` in ${e.provision!.seconds} s (${fmt(e.provision!.users_per_s)}/s; phases ${JSON.stringify(e.provision!.phases)})`);
    md.push('');
  }
  md.push('## What limited each run', '');
  for (const e of r) md.push(`- **${e.scenario} · ${targetLabel(e)}${runLabel(e)}**: ${esc(e.bottleneck)}${e.notes.length ? ` — ${esc(e.notes.join('; '))}` : ''}${e.server_log.warn + e.server_log.error > 0 ? ` — server logged ${e.server_log.warn} warnings, ${e.server_log.error} errors${e.server_log_after_hold !== undefined ? ' up to the end of the hold' : ''}: ${esc(JSON.stringify(e.server_log.byMessage))}` : ''}${afterHold(e)}`);
  md.push('');
  if (file.failures.length) {
    md.push('## Failed runs', '');
    for (const f of file.failures) md.push(`- ${f.scenario} · ${f.target}: ${esc(f.error)}`);
    md.push('');
  }
  md.push('## Method', '');
  md.push(
    '- Load generator: worker processes beside the server (bench/worker/load-worker.ts) on the bare `ws` client, connecting from 127.0.0.2, 127.0.0.3, … (at most 5,000 connections per address: bind() to port 0 gets slow past about 7,000 ports in use). Parley frames are built and read by a lean codec (bench/lib/parley-wire.ts, checked against proto/client-codec.ts); Socket.IO is spoken as raw Engine.IO 4 text frames; raw uWS with a one-byte-opcode protocol.',
    '- Open loop: message k is due at start + k/rate; latency is measured from that due time, so a stalled server or generator shows up as latency (no coordinated omission). Both ends of every channel live in one worker process and share its monotonic clock. `send lag` is how late the generator put messages on the wire; when it is large, the generator was a limit.',
    '- Server figures are sampled every 500 ms from /proc/<pid> (RSS, CPU of the process and of its main thread). Event-loop delay is not exposed by the servers; the `/healthz` probe latency stands in for it (read as `event_loop_delay_ms` if /healthz ever reports one).',
    `- Peers do no persistence and no auth; Parley stores every message durably in its channel history (${typeof file.parameters.store === 'string' && !file.parameters.store.startsWith('sqlite:') ? file.parameters.store.split(':')[0] : `SQLite, durability ${String(file.parameters.durability)}`}) before its send_ack, authenticates every session and tracks presence.`,
    '',
  );
  writeFileSync(mdPath, md.join('\n'));
  written.push(mdPath);
  return written;
}

/** Merges every result file in `dir` (smoke runs left out) into SUMMARY.md and its charts. */
export function writeSummary(dir: string): string[] {
  const files: ResultFile[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
    try {
      const file = JSON.parse(readFileSync(join(dir, f), 'utf8')) as ResultFile;
      if (Array.isArray(file.results) && file.parameters?.scenario !== 'smoke') files.push(file);
    } catch {
      // not a result file
    }
  }
  if (files.length === 0) throw new Error(`no result files in ${dir}`);
  const results = files.flatMap((f) => f.results.map((e) => ({ ...e, run: f.name })));
  const merged: ResultFile = {
    name: 'summary',
    created_at: new Date().toISOString(),
    command: `npm run bench -- --summary ${dir}`,
    machine: files[0]!.machine,
    versions: files[0]!.versions,
    parameters: { scenario: 'summary', durability: [...new Set(files.map((f) => String(f.parameters.durability)))].join(', ') },
    results,
    failures: files.flatMap((f) => f.failures),
    duration_s: Math.round(files.reduce((a, f) => a + f.duration_s, 0)),
  };
  const preface = [
    '## Runs', '',
    '| run | when | took | command | load avg at start |', '|---|---|---:|---|---|',
    ...files.map((f) => `| [${f.name}](${f.name}.md) | ${f.created_at.slice(0, 16).replace('T', ' ')} | ${f.duration_s} s | \`${f.command}\` | ${(f.machine.load_avg_at_start as number[]).join(' ')} |`),
    '',
  ];
  return writeReport(merged, join(dir, 'SUMMARY.md'), preface);
}
