import { HttpError, type HttpRequest, type HttpRouter } from '../../runtime/gateway/index.ts';
import type { AdminTokens } from '../auth/admin-token.ts';
import type { Accounts } from '../auth/accounts.ts';
import type { Revocations } from '../auth/revocations.ts';
import type { ChatDeps } from '../chat-deps.ts';
import { ChatCodes, reject } from '../errors.ts';
import type { UserProfile } from '../tables.ts';

/**
 * The operator's routes, under `/v1/admin/`, for `parleyctl` (README "Operating a cluster").
 * Every one takes an operator token (actors/auth/admin-token.ts) and nothing else: there is no
 * flag that opens them, so a node never serves them to someone without the cluster's secret.
 *
 *   GET  /v1/admin/node                      this node: id, number, version, load; members it sees
 *   GET  /v1/admin/actors/:kind/:key         who owns the actor by this node's placement; active here?
 *   POST /v1/admin/drain                     leave placement, hand off actors and sockets; keep running
 *   GET  /v1/admin/users/:username           an account as the operator sees it
 *   POST /v1/admin/users/:username/disable   refuse its login and every token, on every node; close its sockets
 */

/** A member as a node sees it (the cluster's membership record). */
export interface AdminMember {
  readonly node_id: string;
  readonly ws_url: string;
  readonly load: number;
  readonly started_at_ms: number;
}

/** What a cluster member adds to the admin routes; a lone node has none. */
export interface ClusterControl {
  /** Live members as this node sees them. */
  members(): readonly AdminMember[];
  /** The node that owns a placed actor now, by this node's view (the placement every node uses). */
  ownerOf(kind: string, key: string): string;
  /** Leaves placement and hands off what it hosts, as a SIGTERM would, without exiting. Idempotent. */
  drain(): Promise<void>;
}

export interface NodeFacts {
  readonly node_id: string;
  readonly node_number: number | null;
  readonly version: string;
  readonly connections: number;
  readonly sessions: number;
  readonly started_at_ms: number;
  readonly ws_url: string;
  readonly drained: boolean;
}

export interface AdminApiOptions {
  readonly deps: ChatDeps;
  readonly accounts: Accounts;
  readonly revocations: Revocations;
  readonly tokens: AdminTokens;
  readonly facts: () => NodeFacts;
  /** Undefined on a lone node (and until the cluster is wired, before the node serves). */
  readonly cluster: () => ClusterControl | undefined;
}

/** What `users show` prints; stable field names (scripts read them with --json). */
export interface AdminUserView {
  readonly user_id: string;
  readonly username: string;
  readonly display_name: string;
  readonly created_at_ms: number;
  readonly disabled_at_ms: number | null;
  /** Any device online now (the presence directory: one read). */
  readonly online: boolean;
}

/** Actor kinds the cluster places; sessions are pinned to the node holding their socket. */
const PLACED_KINDS = new Set(['user', 'channel']);

/** Adds the admin routes to `router`. */
export function adminApi(router: HttpRouter, o: AdminApiOptions): HttpRouter {
  const operator = (req: HttpRequest): void => {
    const m = /^Bearer (.+)$/.exec(req.authorization);
    if (!m) throw new HttpError(401, ChatCodes.UNAUTHENTICATED, 'admin routes need an operator token (parleyctl signs one with the cluster secret)');
    if (!o.tokens.verify(m[1]!)) throw new HttpError(401, ChatCodes.UNAUTHENTICATED, 'invalid or expired operator token (signed with another secret?)');
  };
  const userView = async (userId: string, p: UserProfile): Promise<AdminUserView> => {
    const presence = await o.deps.presence.getMany([userId]);
    return {
      user_id: userId,
      username: p.username,
      display_name: p.display_name ?? p.username,
      created_at_ms: p.created_at_ms,
      disabled_at_ms: p.disabled_at_ms ?? null,
      online: presence.get(userId)?.online ?? false,
    };
  };
  const findUser = async (username: string): Promise<{ id: string; profile: UserProfile }> => {
    const id = await o.accounts.byUsername(username);
    const profile = id === undefined ? undefined : await o.accounts.profile(id);
    if (id === undefined || !profile) throw reject(ChatCodes.NOT_FOUND, `no user ${username}`);
    return { id, profile };
  };
  return router
    .add('GET', '/v1/admin/node', (req) => {
      operator(req);
      const facts = o.facts();
      const members = o.cluster()?.members() ?? (facts.drained ? [] : [{ node_id: facts.node_id, ws_url: facts.ws_url, load: facts.connections, started_at_ms: facts.started_at_ms }]);
      return { status: 200, body: { ...facts, cluster: o.cluster() !== undefined, members } };
    })
    .add('GET', '/v1/admin/actors/:kind/:key', (req) => {
      operator(req);
      const kind = req.params.kind!;
      const key = req.params.key!;
      if (!PLACED_KINDS.has(kind)) throw reject(ChatCodes.INVALID_ARGUMENT, `kind must be one of ${[...PLACED_KINDS].join(', ')}`);
      const facts = o.facts();
      const owner = o.cluster()?.ownerOf(kind, key) ?? facts.node_id;
      return { status: 200, body: { kind, key, owner, node_id: facts.node_id, active_here: o.deps.system.isActive({ kind, key }) } };
    })
    .add('POST', '/v1/admin/drain', async (req) => {
      operator(req);
      const cluster = o.cluster();
      // A lone node has nowhere to hand off to: stopping it is what SIGTERM is for.
      if (!cluster) throw reject(ChatCodes.INVALID_ARGUMENT, 'this node is not a cluster member: there is no placement to leave');
      await cluster.drain();
      return { status: 200, body: { node_id: o.facts().node_id, drained: true } };
    })
    .add('GET', '/v1/admin/users/:username', async (req) => {
      operator(req);
      const { id, profile } = await findUser(req.params.username!);
      return { status: 200, body: await userView(id, profile) };
    })
    .add('POST', '/v1/admin/users/:username/disable', async (req) => {
      operator(req);
      const { id } = await findUser(req.params.username!);
      // Profile first: once the revocation is out, a login racing it must already be refused.
      const profile = await o.accounts.disable(id);
      if (!profile) throw reject(ChatCodes.NOT_FOUND, `no user ${req.params.username!}`);
      await o.revocations.revokeUser(id);
      return { status: 200, body: await userView(id, profile) };
    });
}
