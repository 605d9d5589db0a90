import { randomUUID } from 'node:crypto';
import { codeOf } from '../../runtime/errors.ts';
import { HttpError, HttpRouter, type HttpRequest } from '../../runtime/gateway/index.ts';
import { KeyedRateLimiter } from '../../runtime/limits/token-bucket.ts';
import type { SendAck } from '../../proto/client-frames.ts';
import { decodeMessage } from '../../proto/client-codec.ts';
import type { Accounts } from '../auth/accounts.ts';
import type { Revocations } from '../auth/revocations.ts';
import type { TokenClaims, TokenSigner } from '../auth/tokens.ts';
import type { ChannelInfo, ChannelReads, HistoryPage, ReadState } from '../channel/channel-messages.ts';
import { channels, users, type ChatDeps } from '../chat-deps.ts';
import { ChatCodes, reject } from '../errors.ts';
import type { SendAllowance } from '../limits/send-allowance.ts';
import { validateSend } from '../session/session-actor.ts';
import { MAX_BLOCKS, MAX_GROUP_MEMBERS, MAX_MUTE_MS, Tables, type ChannelMeta } from '../tables.ts';
import { checkDeviceId, deleteDeviceSubscription, parseWebPushSubscription, putSubscription } from '../push/push-subscriptions.ts';

export interface ServerInfo {
  node_id: string;
  ws_url: string;
}

/** Lists the nodes a client may connect to, best first. */
export interface Discovery {
  servers(): ServerInfo[];
}

export interface HttpApiOptions {
  readonly deps: ChatDeps;
  readonly accounts: Accounts;
  readonly signer: TokenSigner;
  /** Logged-out logins, refused like invalid tokens. */
  readonly revocations: Revocations;
  readonly discovery: Discovery;
  /** The node's send admission, shared with the WebSocket sessions. */
  readonly sendAllowance: SendAllowance;
  /** Signups plus logins allowed per client address per minute. */
  readonly authPerMinute: number;
  readonly health: () => Record<string, unknown>;
  /** Why the node is not ready (GET /readyz answers 503 with it), or undefined. */
  readonly ready: () => Promise<string | undefined>;
  /** GET /metrics: the node's registry in Prometheus text form. */
  readonly metrics: { text(): Promise<string>; readonly contentType: string };
  readonly push: {
    /** Accept `http:` subscription endpoints on loopback (--push-allow-insecure). */
    readonly allowInsecure: boolean;
    /** The cluster's VAPID public key, base64url (loaded before the node serves). */
    readonly publicKey: () => string;
  };
}

/** The HTTP half of the contract (see README): JSON in, JSON out, bearer tokens. */
export function httpApi(o: HttpApiOptions): HttpRouter {
  const { deps, accounts, signer, discovery } = o;
  const { kv } = deps.store;
  const authLimiter = new KeyedRateLimiter(o.authPerMinute / 60, o.authPerMinute);

  const limitAuth = (req: HttpRequest): void => {
    if (!authLimiter.take(req.remoteAddress)) throw new HttpError(429, ChatCodes.RATE_LIMITED, 'too many signups or logins from this address');
  };
  /** The bearer token's claims: signed, unexpired and not logged out (no store read). */
  const bearer = (req: HttpRequest): TokenClaims => {
    const m = /^Bearer (.+)$/.exec(req.authorization);
    const claims = m ? signer.verify(m[1]!) : undefined;
    if (!claims) throw new HttpError(401, ChatCodes.UNAUTHENTICATED, m ? 'invalid or expired token' : 'missing bearer token');
    if (o.revocations.refuses(claims)) throw new HttpError(401, ChatCodes.UNAUTHENTICATED, 'logged out or disabled: this token was revoked');
    return claims;
  };
  const authenticate = (req: HttpRequest): string => bearer(req).sub;
  /** The user's own membership row says; a channel they are not in (or that does not exist) is FORBIDDEN alike. */
  const requireMember = async (me: string, channelId: string): Promise<void> => {
    if ((await kv.get(Tables.userChannel, me, channelId)) === undefined) throw reject(ChatCodes.FORBIDDEN, 'only members of the channel can mute it');
  };
  const body = (req: HttpRequest): Record<string, unknown> => {
    const b = req.json();
    if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new HttpError(400, ChatCodes.INVALID_ARGUMENT, 'body must be a JSON object');
    return b as Record<string, unknown>;
  };
  const userIdField = async (b: Record<string, unknown>, me: string): Promise<string> => {
    const id = b.user_id;
    if (typeof id !== 'string' || id.length === 0 || id.length > 64) throw reject(ChatCodes.INVALID_ARGUMENT, 'user_id is required');
    if (id === me) throw reject(ChatCodes.INVALID_ARGUMENT, 'user_id must be someone else');
    if (!(await accounts.exists(id))) throw reject(ChatCodes.NOT_FOUND, 'no such user');
    return id;
  };
  /**
   * Refuses contact between `me` and `others` (a friend request, adding to a group) while a
   * block stands either way. Each side's user actor answers for its own blocks.
   */
  const requireNoBlocks = async (me: string, others: readonly string[]): Promise<void> => {
    const rest = others.filter((o) => o !== me);
    if (rest.length === 0) return;
    const [mine, theirs] = await Promise.all([
      users(deps, me).ask<string[]>({ type: 'blocking', userIds: [...rest] }),
      Promise.all(rest.map((o) => users(deps, o).ask<string[]>({ type: 'blocking', userIds: [me] }))),
    ]);
    if (mine.length > 0) throw reject(ChatCodes.FORBIDDEN, `you have blocked ${mine[0]}; unblock them first`);
    const by = rest.find((_, i) => theirs[i]!.length > 0);
    if (by !== undefined) throw reject(ChatCodes.FORBIDDEN, `${by} does not accept this from you`);
  };

  return new HttpRouter()
    .add('GET', '/healthz', () => ({ status: 200, body: { status: 'ok', ...o.health() } }))
    // Readiness for load balancers and orchestrators: 503 with the reason while the node should
    // get no traffic; /healthz stays "the process answers".
    .add('GET', '/readyz', async (req) => {
      const reason = await o.ready();
      if (reason !== undefined) req.log.warn({ reason }, 'not ready');
      return reason === undefined ? { status: 200, body: { status: 'ready' } } : { status: 503, body: { status: 'not_ready', reason } };
    })
    // Unauthenticated, like /healthz: it holds counts and latencies, no user or channel names
    // (labels are kinds, operations and node ids). Keep the node port off the internet.
    .add('GET', '/metrics', async () => ({ status: 200, raw: { contentType: o.metrics.contentType, bytes: Buffer.from(await o.metrics.text(), 'utf8') } }))
    .add('POST', '/v1/users', async (req) => {
      limitAuth(req);
      const b = body(req);
      const userId = await accounts.signup(b.username, b.password);
      return { status: 201, body: { user_id: userId } };
    })
    // The directory: find anyone by exact username, or see a user's public profile.
    .add('GET', '/v1/users', async (req) => {
      authenticate(req);
      const username = req.query.get('username');
      if (!username) throw reject(ChatCodes.INVALID_ARGUMENT, 'username is required (GET /v1/users?username=NAME)');
      const id = await accounts.byUsername(username);
      const profile = id === undefined ? undefined : await accounts.publicProfile(id);
      if (!profile) throw reject(ChatCodes.NOT_FOUND, 'no such user');
      return { status: 200, body: profile };
    })
    .add('PATCH', '/v1/users/me', async (req) => {
      const me = authenticate(req);
      return { status: 200, body: await accounts.setDisplayName(me, body(req).display_name) };
    })
    .add('GET', '/v1/users/:id', async (req) => {
      const me = authenticate(req);
      const id = req.params.id === 'me' ? me : req.params.id!;
      const profile = await accounts.publicProfile(id);
      if (!profile) throw reject(ChatCodes.NOT_FOUND, 'no such user');
      return { status: 200, body: profile };
    })
    .add('POST', '/v1/sessions', async (req) => {
      limitAuth(req);
      const b = body(req);
      const userId = await accounts.login(b.username, b.password);
      const issued = signer.issue(userId);
      return { status: 200, body: { token: issued.token, expires_at_ms: issued.expiresAtMs, user_id: userId, servers: discovery.servers() } };
    })
    // A new token of the same login (its sid), valid for a full lifetime; the presented one stays
    // valid until it expires or the login is logged out.
    .add('POST', '/v1/sessions/refresh', (req) => {
      const claims = bearer(req);
      const issued = signer.issue(claims.sub, Date.now(), claims.sid);
      return { status: 200, body: { token: issued.token, expires_at_ms: issued.expiresAtMs } };
    })
    // Logout: every token of this login is refused on every node (within about a second on the
    // others) and its sockets are closed with 1008; the user's other logins are untouched.
    .add('DELETE', '/v1/sessions', async (req) => {
      await o.revocations.revoke(bearer(req), signer.ttlSeconds);
      return { status: 200, body: {} };
    })
    .add('GET', '/v1/servers', () => ({ status: 200, body: { servers: discovery.servers() } }))
    .add('POST', '/v1/friends', async (req) => {
      const me = authenticate(req);
      const other = await userIdField(body(req), me);
      await requireNoBlocks(me, [other]);
      await kv.write([{ op: 'put', table: Tables.friend, partition: me, key: other, value: JSON.stringify({ at_ms: Date.now() }) }]);
      const mutual = (await kv.get(Tables.friend, other, me)) !== undefined;
      if (mutual) {
        users(deps, me).tell({ type: 'friendsChanged' });
        users(deps, other).tell({ type: 'friendsChanged' });
      }
      return { status: 200, body: { status: mutual ? 'friends' : 'pending' } };
    })
    // Unfriend: no longer friends either way (whoever asked first), and presence stops flowing.
    .add('DELETE', '/v1/friends/:userId', async (req) => {
      const me = authenticate(req);
      const other = req.params.userId!;
      if (other === me) throw reject(ChatCodes.INVALID_ARGUMENT, 'user_id must be someone else');
      await kv.write([
        { op: 'delete', table: Tables.friend, partition: me, key: other },
        { op: 'delete', table: Tables.friend, partition: other, key: me },
      ]);
      users(deps, me).tell({ type: 'friendsChanged' });
      users(deps, other).tell({ type: 'friendsChanged' });
      return { status: 200, body: {} };
    })
    .add('GET', '/v1/friends', async (req) => {
      const me = authenticate(req);
      const added = await kv.list(Tables.friend, me);
      const back = await Promise.all(added.map((r) => kv.get(Tables.friend, r.key, me)));
      const ids = added.filter((_, i) => back[i] !== undefined).map((r) => r.key);
      const [profiles, states] = await Promise.all([Promise.all(ids.map((id) => accounts.profile(id))), deps.presence.getMany(ids)]);
      const friends = ids.map((id, i) => ({
        user_id: id,
        username: profiles[i]?.username ?? '',
        display_name: profiles[i]?.display_name ?? profiles[i]?.username ?? '',
        online: states.get(id)?.online ?? false,
        last_active_at_ms: states.get(id)?.lastActiveAtMs ?? 0,
      }));
      return { status: 200, body: { friends } };
    })
    // Blocks (README "Blocks"): kept by the blocker's user actor, which applies them everywhere
    // (its inbox, the other user's actor, their DM channel) before answering.
    .add('POST', '/v1/blocks', async (req) => {
      const me = authenticate(req);
      const other = await userIdField(body(req), me);
      await users(deps, me).ask<void>({ type: 'block', userId: other }, { timeoutMs: deps.timings.fanoutTimeoutMs * 3 });
      return { status: 200, body: {} };
    })
    .add('DELETE', '/v1/blocks/:userId', async (req) => {
      const me = authenticate(req);
      const other = await userIdField({ user_id: req.params.userId }, me);
      await users(deps, me).ask<void>({ type: 'unblock', userId: other }, { timeoutMs: deps.timings.fanoutTimeoutMs * 3 });
      return { status: 200, body: {} };
    })
    .add('GET', '/v1/blocks', async (req) => {
      const me = authenticate(req);
      const rows = await kv.list(Tables.block, me, MAX_BLOCKS);
      return { status: 200, body: { blocked: rows.map((r) => r.key) } };
    })
    .add('POST', '/v1/dms', async (req) => {
      const me = authenticate(req);
      const other = await userIdField(body(req), me);
      const pair = [me, other].sort().join(':');
      // The pair's id is claimed once; whoever loses the race gets the winner's id. Creating the
      // channel is idempotent, so a crash between claim and create heals on the next call.
      const { value: channelId } = await kv.putIfAbsent(Tables.dm, pair, '', `dm-${randomUUID()}`);
      await channels(deps, channelId).ask({ type: 'create', kind: 'dm', name: '', creatorId: me, memberIds: [other] });
      return { status: 200, body: { channel_id: channelId } };
    })
    .add('POST', '/v1/channels', async (req) => {
      const me = authenticate(req);
      const b = body(req);
      const name = b.name ?? '';
      if (typeof name !== 'string' || name.length > 200) throw reject(ChatCodes.INVALID_ARGUMENT, 'name must be a string of at most 200 characters');
      const raw = b.member_ids ?? [];
      if (!Array.isArray(raw) || raw.some((x) => typeof x !== 'string')) throw reject(ChatCodes.INVALID_ARGUMENT, 'member_ids must be a list of user ids');
      const memberIds = [...new Set([me, ...(raw as string[])])];
      if (memberIds.length > MAX_GROUP_MEMBERS) throw reject(ChatCodes.GROUP_FULL, `a group has at most ${MAX_GROUP_MEMBERS} members`);
      const exists = await Promise.all(memberIds.map((id) => accounts.exists(id)));
      if (exists.some((e) => !e)) throw reject(ChatCodes.NOT_FOUND, 'member_ids names an unknown user');
      await requireNoBlocks(me, memberIds);
      const channelId = `g-${randomUUID()}`;
      await channels(deps, channelId).ask({ type: 'create', kind: 'group', name, creatorId: me, memberIds });
      return { status: 201, body: { channel_id: channelId } };
    })
    .add('GET', '/v1/channels', async (req) => {
      const me = authenticate(req);
      const mine = await kv.list(Tables.userChannel, me);
      const list = await Promise.all(
        mine.map(async (r): Promise<(ChannelInfo & ReadState) | undefined> => {
          const [meta, members] = await Promise.all([kv.get(Tables.channel, r.key, 'meta'), kv.list(Tables.member, r.key)]);
          if (!meta) return undefined;
          const m = JSON.parse(meta) as ChannelMeta;
          // Left meanwhile: not listed. Any other failure fails the list (retryable), rather than show wrong counts.
          const state = await channels(deps, r.key)
            .ask<ReadState>({ type: 'readState', userId: me })
            .catch((err: unknown) => {
              if (codeOf(err) === ChatCodes.FORBIDDEN) return undefined;
              throw err;
            });
          if (!state) return undefined;
          return { channel_id: r.key, kind: m.kind, name: m.name, member_ids: members.map((x) => x.key), ...state };
        }),
      );
      return { status: 200, body: { channels: list.filter((c) => c !== undefined) } };
    })
    .add('PUT', '/v1/channels/:id/mute', async (req) => {
      const me = authenticate(req);
      const until = body(req).until_ms;
      const now = Date.now();
      if (typeof until !== 'number' || !Number.isSafeInteger(until) || until <= now || until > now + MAX_MUTE_MS) {
        throw reject(ChatCodes.INVALID_ARGUMENT, `until_ms must be an integer time in ms after now and at most ${MAX_MUTE_MS} ms (366 days) ahead`);
      }
      await requireMember(me, req.params.id!);
      await users(deps, me).ask({ type: 'mute', channelId: req.params.id!, untilMs: until });
      return { status: 200, body: { channel_id: req.params.id!, until_ms: until } };
    })
    .add('DELETE', '/v1/channels/:id/mute', async (req) => {
      const me = authenticate(req);
      await requireMember(me, req.params.id!);
      await users(deps, me).ask({ type: 'mute', channelId: req.params.id!, untilMs: undefined });
      return { status: 200, body: {} };
    })
    .add('GET', '/v1/channels/:id/reads', async (req) => {
      const me = authenticate(req);
      return { status: 200, body: await channels(deps, req.params.id!).ask<ChannelReads>({ type: 'reads', requesterId: me }) };
    })
    .add('POST', '/v1/channels/:id/members', async (req) => {
      const me = authenticate(req);
      const b = body(req);
      const userId = b.user_id;
      if (typeof userId !== 'string' || !(await accounts.exists(userId))) throw reject(ChatCodes.NOT_FOUND, 'no such user');
      await requireNoBlocks(me, [userId]);
      await channels(deps, req.params.id!).ask({ type: 'addMember', actorId: me, userId });
      return { status: 200, body: {} };
    })
    .add('DELETE', '/v1/channels/:id/members/:userId', async (req) => {
      const me = authenticate(req);
      await channels(deps, req.params.id!).ask({ type: 'removeMember', actorId: me, userId: req.params.userId! });
      return { status: 200, body: {} };
    })
    .add('POST', '/v1/channels/:id/messages', async (req) => {
      const me = authenticate(req);
      const b = body(req);
      const channelId = req.params.id!;
      validateSend(channelId, b.client_msg_id, b.text);
      const ack = await o.sendAllowance.admit(me, () =>
        channels(deps, channelId).ask<SendAck>(
          { type: 'send', senderId: me, clientMsgId: b.client_msg_id as string, text: b.text as string },
          { timeoutMs: deps.timings.fanoutTimeoutMs * 2 },
        ),
      );
      return { status: 201, body: { message_id: ack.message_id, channel_seq: ack.channel_seq, created_at_ms: ack.created_at_ms } };
    })
    // Push (README "Push"). The key is public (push services see it on every request), but the
    // route takes a bearer token like the rest of the API: an app asks for it while logged in,
    // right before it subscribes, so nothing is lost and no route is open to anyone.
    .add('GET', '/v1/push/vapid-public-key', (req) => {
      authenticate(req);
      return { status: 200, body: { key: o.push.publicKey() } };
    })
    .add('PUT', '/v1/devices/:deviceId/push', async (req) => {
      const me = authenticate(req);
      const deviceId = checkDeviceId(req.params.deviceId);
      const subscription = parseWebPushSubscription(body(req), o.push.allowInsecure);
      await putSubscription(kv, me, deviceId, subscription);
      return { status: 200, body: {} };
    })
    .add('DELETE', '/v1/devices/:deviceId/push', async (req) => {
      const me = authenticate(req);
      await deleteDeviceSubscription(kv, me, checkDeviceId(req.params.deviceId));
      return { status: 200, body: {} };
    })
    .add('GET', '/v1/channels/:id/messages', async (req) => {
      const me = authenticate(req);
      const limitText = req.query.get('limit');
      const limit = limitText === null ? 50 : Number(limitText);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw reject(ChatCodes.INVALID_ARGUMENT, 'limit must be 1..100');
      const before = req.query.get('before');
      const page = await channels(deps, req.params.id!).ask<HistoryPage>({
        type: 'history',
        requesterId: me,
        ...(before ? { beforeMessageId: before } : {}),
        limit,
      });
      return { status: 200, body: { messages: page.messages.map(decodeMessage), has_more: page.has_more } };
    });
}
