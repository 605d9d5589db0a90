/**
 * parleyctl's operator commands (nodes, where, drain, stats, users show|disable): each reads the
 * cluster through a ClusterTarget and returns what to print, as a table for people and as one
 * JSON object for scripts (`--json`), plus the exit code (README "Operating a cluster").
 *
 * The folder (bin/ctl): the target (one node by `--url`, or every member in etcd), operator
 * tokens, the Prometheus text parser `stats` sums with, tables, and CtlError, whose code is the
 * exit code. Guarantees: a command never prints a partial answer as a whole one (nodes that did
 * not answer are listed, and the exit code says so); nothing here changes a node without an
 * operator token signed with the cluster's secret.
 *
 * Example: `parleyctl where channel 1234567890 --etcd 127.0.0.1:2379 --json`
 *   -> {"kind":"channel","key":"1234567890","owner":"n2","members":3,"owner_agrees":true,"active":true}
 */
import { HashRing } from '../../runtime/cluster/hash-ring.ts';
import type { AdminUserView } from '../../actors/api/admin-api.ts';
import { CtlError } from './ctl-error.ts';
import type { ClusterTarget, NodeEndpoint } from './cluster-target.ts';
import { parsePrometheusText, seriesKey, sumSamples, type Sample } from './prometheus-text.ts';
import { table } from './table.ts';

export interface CommandOutput {
  readonly json: unknown;
  readonly text: string;
  /** 0 unless some part failed while the rest could still be shown (e.g. a node did not answer). */
  readonly exitCode: number;
}

/** Actor kinds placed by hashing over the members; `where` answers for these. */
export const PLACED_KINDS = ['user', 'channel'] as const;
/** How long a drain may take (leave, hand off, passivate) before parleyctl gives up waiting. */
const DRAIN_TIMEOUT_MS = 60_000;

interface NodeFacts {
  readonly node_id: string;
  readonly node_number: number | null;
  readonly version: string;
  readonly connections: number;
  readonly sessions: number;
  readonly drained: boolean;
}

const ago = (ms: number): string => {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
};

const failure = (err: unknown): { code: string; message: string } =>
  err instanceof CtlError ? { code: err.code, message: err.message } : { code: 'FAILED', message: err instanceof Error ? err.message : String(err) };

/** `nodes`: live members with their number, version and load; a member that does not answer is listed with its error (exit 4). */
export async function nodesCommand(target: ClusterTarget): Promise<CommandOutput> {
  const members = await target.members();
  const rows = await Promise.all(
    members.map(async (m) => {
      try {
        const f = (await target.call(m.httpUrl, 'GET', '/v1/admin/node')).body as NodeFacts;
        return { node_id: m.nodeId, node_number: f.node_number, version: f.version, connections: f.connections, sessions: f.sessions, load: m.load, started_at_ms: m.startedAtMs, http_url: m.httpUrl, ws_url: m.wsUrl, drained: f.drained };
      } catch (err) {
        return { node_id: m.nodeId, node_number: null, version: null, connections: null, sessions: null, load: m.load, started_at_ms: m.startedAtMs, http_url: m.httpUrl, ws_url: m.wsUrl, drained: null, error: failure(err) };
      }
    }),
  );
  const text = table(
    ['NODE', 'NUMBER', 'VERSION', 'CONNECTIONS', 'LOAD', 'UP', 'URL', 'STATUS'],
    rows.map((r) => [r.node_id, String(r.node_number ?? '-'), r.version ?? '-', String(r.connections ?? '-'), String(r.load), ago(r.started_at_ms), r.http_url, 'error' in r && r.error ? `${r.error.code}: ${r.error.message}` : r.drained ? 'drained' : 'ok']),
  );
  return { json: { nodes: rows }, text: `${text}${rows.length} node${rows.length === 1 ? '' : 's'}\n`, exitCode: rows.some((r) => 'error' in r) ? 4 : 0 };
}

/**
 * `where KIND KEY`: the owner by rendezvous hashing over the live member ids, the function every
 * node routes by (runtime/cluster/hash-ring.ts), then the owner's own answer: whether its view
 * agrees and whether the actor is active there now.
 */
export async function whereCommand(target: ClusterTarget, kind: string, key: string): Promise<CommandOutput> {
  if (!(PLACED_KINDS as readonly string[]).includes(kind)) throw new CtlError('USAGE', `KIND must be one of ${PLACED_KINDS.join(', ')} (sessions stay on the node holding their socket)`);
  const members = await target.members();
  const owner = new HashRing(members.map((m) => m.nodeId)).ownerOf(`${kind}/${key}`);
  if (owner === undefined) throw new CtlError('NOT_FOUND', 'the cluster has no live members');
  const node = members.find((m) => m.nodeId === owner)!;
  const seen = (await target.call(node.httpUrl, 'GET', `/v1/admin/actors/${encodeURIComponent(kind)}/${encodeURIComponent(key)}`)).body as { owner: string; active_here: boolean };
  const json = { kind, key, owner, members: members.length, owner_agrees: seen.owner === owner, active: seen.active_here };
  const text = `${kind}/${key} -> ${owner} (${json.active ? 'active there now' : 'not active: activated there on its next message'})${json.owner_agrees ? '' : `; ${owner}'s own view says ${seen.owner} (membership is changing)`}\n`;
  return { json, text, exitCode: 0 };
}

/** `drain NODE`: the node leaves placement and hands off its actors and sockets, and keeps running. */
export async function drainCommand(target: ClusterTarget, nodeId: string): Promise<CommandOutput> {
  const node = await target.node(nodeId);
  const started = Date.now();
  await target.call(node.httpUrl, 'POST', '/v1/admin/drain', DRAIN_TIMEOUT_MS);
  const tookMs = Date.now() - started;
  return { json: { node_id: nodeId, drained: true, took_ms: tookMs }, text: `${nodeId} drained in ${tookMs} ms: out of placement, sockets handed off; stop it with SIGTERM when done\n`, exitCode: 0 };
}

type StatsSource = 'metrics' | 'healthz';

/** A node without GET /metrics (an older build): the counts its /healthz gives, as samples. */
function healthzSamples(body: unknown): Sample[] {
  const out: Sample[] = [];
  if (typeof body !== 'object' || body === null) return out;
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (typeof v === 'number' && Number.isFinite(v) && k !== 'node_number') out.push({ name: `parley_healthz_${k}`, labels: [], value: v });
  }
  return out;
}

async function nodeSamples(target: ClusterTarget, m: NodeEndpoint): Promise<{ source: StatsSource; samples: Sample[] }> {
  const r = await target.fetch(m.httpUrl, 'GET', '/metrics');
  if (r.status === 200) {
    try {
      return { source: 'metrics', samples: parsePrometheusText(r.text) };
    } catch (err) {
      throw new CtlError('FAILED', `${m.nodeId} /metrics: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  if (r.status !== 404) throw new CtlError(r.status === 401 || r.status === 403 ? 'REFUSED' : 'FAILED', `${m.nodeId} /metrics: ${r.status} ${r.text.slice(0, 200)}`);
  const h = await target.call(m.httpUrl, 'GET', '/healthz');
  return { source: 'healthz', samples: healthzSamples(h.body) };
}

/**
 * `stats`: every node's /metrics samples summed by name and labels. A node without /metrics
 * gives its /healthz counts instead (named parley_healthz_*), and the output says so.
 */
export async function statsCommand(target: ClusterTarget): Promise<CommandOutput> {
  const members = await target.members();
  const per = await Promise.all(
    members.map(async (m) => {
      try {
        return { node_id: m.nodeId, ...(await nodeSamples(target, m)) };
      } catch (err) {
        return { node_id: m.nodeId, source: 'unreachable' as const, samples: [] as Sample[], error: failure(err) };
      }
    }),
  );
  const sums = sumSamples(per.map((p) => p.samples));
  const nodes = per.map((p) => ({ node_id: p.node_id, source: p.source, ...('error' in p ? { error: p.error } : {}) }));
  const json = { nodes, samples: sums.map((s) => ({ name: s.name, labels: Object.fromEntries(s.labels), value: s.value })) };
  const notes = per
    .filter((p) => p.source !== 'metrics')
    .map((p) => ('error' in p && p.error ? `# ${p.node_id}: left out: ${p.error.code}: ${p.error.message}\n` : `# ${p.node_id}: no GET /metrics on this node (an older build); its /healthz counts are summed as parley_healthz_*\n`))
    .join('');
  const text = `# summed over ${per.filter((p) => !('error' in p)).length} of ${per.length} nodes\n${notes}${table(['SERIES', 'VALUE'], sums.map((s) => [seriesKey(s), String(s.value)]))}`;
  return { json, text, exitCode: per.some((p) => 'error' in p) ? 4 : 0 };
}

/** Asks the first member that answers (every node reads the same store). */
async function anyNode(target: ClusterTarget, method: 'GET' | 'POST', path: string): Promise<unknown> {
  const members = await target.members();
  let last: unknown = new CtlError('NOT_FOUND', 'the cluster has no live members');
  for (const m of members) {
    try {
      return (await target.call(m.httpUrl, method, path)).body;
    } catch (err) {
      if (!(err instanceof CtlError && err.code === 'UNREACHABLE')) throw err;
      last = err;
    }
  }
  throw last;
}

function userText(u: AdminUserView): string {
  const rows: [string, string][] = [
    ['user_id', u.user_id],
    ['username', u.username],
    ['display_name', u.display_name],
    ['created', new Date(u.created_at_ms).toISOString()],
    ['disabled', u.disabled_at_ms === null ? 'no' : new Date(u.disabled_at_ms).toISOString()],
    ['online', u.online ? 'yes' : 'no'],
  ];
  return rows.map(([k, v]) => `${k.padEnd(13)}${v}`).join('\n') + '\n';
}

export async function userShowCommand(target: ClusterTarget, username: string): Promise<CommandOutput> {
  const u = (await anyNode(target, 'GET', `/v1/admin/users/${encodeURIComponent(username)}`)) as AdminUserView;
  return { json: u, text: userText(u), exitCode: 0 };
}

/** `users disable NAME`: login refused, every token refused and every socket closed on every node (within about a second). */
export async function userDisableCommand(target: ClusterTarget, username: string): Promise<CommandOutput> {
  const u = (await anyNode(target, 'POST', `/v1/admin/users/${encodeURIComponent(username)}/disable`)) as AdminUserView;
  return { json: u, text: `${userText(u)}disabled: its tokens are refused and its sockets closed on every node within about a second\n`, exitCode: 0 };
}
