import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { AdminTokens } from '../../actors/auth/admin-token.ts';
import { createEtcdClient } from '../../runtime/cluster/etcd-client.ts';
import { decodeMember } from '../../runtime/cluster/member-view.ts';
import { CtlError } from './ctl-error.ts';

/** How parleyctl finds the cluster and proves it is an operator (the common flags). */
export interface TargetOptions {
  /** One node's HTTP base URL; the members are those it sees. */
  readonly url?: string | undefined;
  /** etcd endpoints, comma-separated; the members are those registered there. */
  readonly etcd?: string | undefined;
  readonly clusterPrefix: string;
  /** The cluster's secret file (nodes started with --secret-file). */
  readonly secretFile?: string | undefined;
  /** A lone node's data dir (its `signing.secret`). */
  readonly dataDir?: string | undefined;
  /** Deadline of each HTTP or etcd call. */
  readonly timeoutMs: number;
}

export interface NodeEndpoint {
  readonly nodeId: string;
  readonly httpUrl: string;
  readonly wsUrl: string;
  readonly load: number;
  readonly startedAtMs: number;
}

/** A node's answer: its status and parsed JSON body (or text, for /metrics). */
export interface NodeReply {
  readonly status: number;
  readonly body: unknown;
  readonly text: string;
}

interface WireMember {
  readonly node_id: string;
  readonly ws_url: string;
  readonly load: number;
  readonly started_at_ms: number;
}

/**
 * A node's HTTP base from its WebSocket URL (the membership record carries only that):
 * `ws://h:p/v1/ws` is served by `http://h:p`. Behind a proxy that maps them differently, use
 * `--url` per node.
 */
export function httpUrlOf(wsUrl: string): string {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  return u.origin;
}

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CtlError('UNREACHABLE', `${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
};

/** The cluster as parleyctl reaches it: members, and authenticated calls to each. */
export class ClusterTarget {
  private tokens: AdminTokens | undefined;
  private token: string | undefined;

  private constructor(
    private readonly o: TargetOptions,
    private readonly etcd: Etcd3 | undefined,
  ) {}

  static open(o: TargetOptions): ClusterTarget {
    if ((o.url === undefined) === (o.etcd === undefined)) throw new CtlError('USAGE', 'give exactly one of --url (one node) or --etcd (the cluster registry)');
    if (o.url !== undefined && !/^https?:\/\//.test(o.url)) throw new CtlError('USAGE', `--url must be http://host:port or https://..., got ${o.url}`);
    const etcd = o.etcd === undefined ? undefined : createEtcdClient({ hosts: o.etcd.split(',').map((h) => h.trim()), callTimeoutMs: o.timeoutMs });
    return new ClusterTarget(o, etcd);
  }

  close(): void {
    this.etcd?.close();
  }

  private get prefix(): string {
    return this.o.clusterPrefix.replace(/\/+$/, '');
  }

  /**
   * The operator token, from the first secret found: --secret-file, else --data-dir's
   * signing.secret, else the shared secret the nodes keep in etcd (a cluster without a secret file).
   */
  private async adminToken(): Promise<string> {
    if (this.token !== undefined) return this.token;
    let secret: string | undefined;
    const read = (path: string, flag: string): string => {
      try {
        return readFileSync(path, 'utf8').trim();
      } catch (err) {
        throw new CtlError('USAGE', `${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
    };
    if (this.o.secretFile !== undefined) secret = read(this.o.secretFile, '--secret-file');
    else if (this.o.dataDir !== undefined) secret = read(join(this.o.dataDir, 'signing.secret'), '--data-dir');
    else if (this.etcd !== undefined) {
      const key = `${this.prefix}/secret`;
      secret = (await withTimeout(this.etcd.get(key).string(), this.o.timeoutMs, `etcd ${this.o.etcd}`).catch((err: unknown) => {
        throw err instanceof CtlError ? err : new CtlError('UNREACHABLE', `etcd ${this.o.etcd}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      })) ?? undefined;
      if (secret === undefined) throw new CtlError('USAGE', `no cluster secret at ${key} in etcd (do the nodes use --secret-file? then pass it)`);
    } else {
      throw new CtlError('USAGE', 'operator commands need the cluster secret: --secret-file FILE, --data-dir DIR (a lone node\'s), or --etcd (the secret the nodes share there)');
    }
    if (secret.length < 32) throw new CtlError('USAGE', 'the secret must hold at least 32 characters');
    this.tokens ??= new AdminTokens(Buffer.from(secret, 'utf8'));
    this.token = this.tokens.mint();
    return this.token;
  }

  /** Live members: registered in etcd, or as the --url node sees them. Sorted by node id. */
  async members(): Promise<NodeEndpoint[]> {
    let list: NodeEndpoint[];
    if (this.etcd !== undefined) {
      const prefix = `${this.prefix}/members/`;
      const rows = await withTimeout(this.etcd.getAll().prefix(prefix).strings(), this.o.timeoutMs, `etcd ${this.o.etcd}`).catch((err: unknown) => {
        throw err instanceof CtlError ? err : new CtlError('UNREACHABLE', `etcd ${this.o.etcd}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      });
      list = [];
      for (const [key, value] of Object.entries(rows)) {
        const m = decodeMember(value);
        if (m && key.slice(prefix.length) === m.nodeId) list.push({ nodeId: m.nodeId, httpUrl: httpUrlOf(m.wsUrl), wsUrl: m.wsUrl, load: m.load, startedAtMs: m.startedAtMs });
      }
    } else {
      const url = this.o.url!.replace(/\/+$/, '');
      const r = await this.call(url, 'GET', '/v1/admin/node');
      const body = r.body as { node_id: string; members: readonly WireMember[] };
      list = body.members.map((m) => ({
        nodeId: m.node_id,
        // The node we were pointed at is reached as we were told; the others by their records.
        httpUrl: m.node_id === body.node_id ? url : httpUrlOf(m.ws_url),
        wsUrl: m.ws_url,
        load: m.load,
        startedAtMs: m.started_at_ms,
      }));
    }
    return list.sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  }

  /** One live member by id; NOT_FOUND when the cluster has no such node. */
  async node(nodeId: string): Promise<NodeEndpoint> {
    const members = await this.members();
    const n = members.find((m) => m.nodeId === nodeId);
    if (!n) throw new CtlError('NOT_FOUND', `no live node ${nodeId} (members: ${members.map((m) => m.nodeId).join(', ') || 'none'})`);
    return n;
  }

  /** An admin call; an error answer becomes a CtlError (its code from the status). */
  async call(httpUrl: string, method: 'GET' | 'POST', path: string, timeoutMs?: number): Promise<NodeReply> {
    const r = await this.fetch(httpUrl, method, path, timeoutMs);
    if (r.status >= 200 && r.status < 300) return r;
    const err = (r.body as { error?: { code?: string; message?: string } } | undefined)?.error;
    const why = `${httpUrl} ${method} ${path}: ${r.status} ${err?.code ?? ''} ${err?.message ?? r.text.slice(0, 200)}`.trim();
    if (r.status === 401 || r.status === 403) throw new CtlError('REFUSED', why);
    if (r.status === 404) throw new CtlError('NOT_FOUND', err?.message ?? why);
    if (r.status === 503 || r.status === 504) throw new CtlError('UNREACHABLE', why);
    throw new CtlError('FAILED', why);
  }

  /** A raw request with the operator token: any status comes back (for /metrics and its fallback). */
  async fetch(httpUrl: string, method: 'GET' | 'POST', path: string, timeoutMs = this.o.timeoutMs): Promise<NodeReply> {
    const token = await this.adminToken();
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${httpUrl}${path}`, { method, headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(timeoutMs) });
      text = await res.text();
    } catch (err) {
      // fetch says only "fetch failed"; the reason (ECONNREFUSED, a timeout) is down its causes.
      let why = err instanceof Error ? err.message : String(err);
      for (let c: unknown = err; c instanceof Error; c = c.cause) {
        const code = (c as { code?: unknown }).code;
        if (c.name === 'TimeoutError') why = `no answer in ${timeoutMs} ms`;
        else if (typeof code === 'string') why = code;
      }
      throw new CtlError('UNREACHABLE', `${httpUrl}: ${why}`, { cause: err });
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: res.status, body, text };
  }
}
