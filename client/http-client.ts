/**
 * The HTTP half of the API for apps: signup, login (with service discovery), friends, channels.
 * Uses the platform's `fetch` (browsers, React Native, Node 18+); no Node-only APIs.
 */
export interface ServerInfo {
  node_id: string;
  ws_url: string;
}

/** A token and when it expires (server time, ms since the epoch). */
export interface TokenGrant {
  token: string;
  expires_at_ms: number;
}

export interface LoginResult extends TokenGrant {
  user_id: string;
  servers: ServerInfo[];
}

export class ParleyApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ParleyApiError';
  }
}

type Fetch = (input: string, init?: { method?: string; headers?: Record<string, string>; body?: string; signal?: AbortSignal }) => Promise<{
  status: number;
  text(): Promise<string>;
}>;

/** What anyone signed in may see of a user. */
export interface UserProfile {
  readonly user_id: string;
  readonly username: string;
  readonly display_name: string;
}

export class ParleyHttp {
  private readonly fetchImpl: Fetch;

  constructor(
    readonly baseUrl: string,
    private token?: string,
    fetchImpl?: Fetch,
    /** A request not answered by then fails with TIMEOUT instead of waiting forever. */
    private readonly timeoutMs = 30_000,
  ) {
    // Called as a method of globalThis: browsers throw "Illegal invocation" when fetch runs with
    // any other `this` (e.g. as `this.fetchImpl(...)`); Node does not care, so only a browser shows it.
    this.fetchImpl = fetchImpl ?? ((input, init) => (globalThis.fetch as unknown as Fetch).call(globalThis, input, init));
  }

  setToken(token: string): void {
    this.token = token;
  }

  /** The token requests are sent with: the login's, or the latest refresh's. */
  get currentToken(): string | undefined {
    return this.token;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let res;
    try {
      res = await this.fetchImpl(this.baseUrl + path, {
        method,
        headers,
        signal: AbortSignal.timeout(this.timeoutMs),
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      const timedOut = (err as { name?: string }).name === 'TimeoutError';
      throw new ParleyApiError(0, timedOut ? 'TIMEOUT' : 'UNAVAILABLE', `${method} ${path}: ${timedOut ? `no answer in ${this.timeoutMs} ms` : (err as Error).message}`);
    }
    const text = await res.text();
    const json = text ? (JSON.parse(text) as unknown) : {};
    if (res.status >= 400) {
      const e = (json as { error?: { code?: string; message?: string } }).error;
      throw new ParleyApiError(res.status, e?.code ?? 'HTTP_' + res.status, e?.message ?? `HTTP ${res.status}`);
    }
    return json as T;
  }

  signup(username: string, password: string): Promise<{ user_id: string }> {
    return this.request('POST', '/v1/users', { username, password });
  }

  async login(username: string, password: string): Promise<LoginResult> {
    const r = await this.request<LoginResult>('POST', '/v1/sessions', { username, password });
    this.token = r.token;
    return r;
  }

  /**
   * A new token of the same login, valid for a full lifetime; requests use it from now on. The
   * previous one stays valid until it expires. Pass this as ParleyClient's `refreshToken`.
   */
  async refresh(): Promise<TokenGrant> {
    const r = await this.request<TokenGrant>('POST', '/v1/sessions/refresh');
    this.token = r.token;
    return r;
  }

  /**
   * Logs this login out: all its tokens are refused from now on, on every server, and its open
   * sockets are closed (1008). Other logins of the user are not affected.
   */
  async logout(): Promise<void> {
    await this.request('DELETE', '/v1/sessions');
    this.token = undefined;
  }

  servers(): Promise<{ servers: ServerInfo[] }> {
    return this.request('GET', '/v1/servers');
  }

  /** A user by exact username (the directory); rejects with NOT_FOUND (404) when there is none. */
  findUser(username: string): Promise<UserProfile> {
    return this.request('GET', `/v1/users?username=${encodeURIComponent(username)}`);
  }

  /** A user's public profile; `me` for yourself. */
  user(userId: string): Promise<UserProfile> {
    return this.request('GET', `/v1/users/${encodeURIComponent(userId)}`);
  }

  /** The name others see instead of your username: 1-64 code points. */
  setDisplayName(displayName: string): Promise<UserProfile> {
    return this.request('PATCH', '/v1/users/me', { display_name: displayName });
  }

  /** Ends a friendship (or a pending request) both ways. */
  unfriend(userId: string): Promise<object> {
    return this.request('DELETE', `/v1/friends/${encodeURIComponent(userId)}`);
  }

  addFriend(userId: string): Promise<{ status: 'pending' | 'friends' }> {
    return this.request('POST', '/v1/friends', { user_id: userId });
  }

  friends(): Promise<{ friends: { user_id: string; username: string; display_name: string; online: boolean; last_active_at_ms: number }[] }> {
    return this.request('GET', '/v1/friends');
  }

  openDm(userId: string): Promise<{ channel_id: string }> {
    return this.request('POST', '/v1/dms', { user_id: userId });
  }

  createGroup(name: string, memberIds: string[]): Promise<{ channel_id: string }> {
    return this.request('POST', '/v1/channels', { name, member_ids: memberIds });
  }

  /** Your channels, each with its head (`last_seq`), your read mark and how many messages of others are after it. */
  channels(): Promise<{ channels: { channel_id: string; kind: 'dm' | 'group'; name: string; member_ids: string[]; last_seq: number; last_read_seq: number; unread_count: number }[] }> {
    return this.request('GET', '/v1/channels');
  }

  /** Every member's read mark in a channel (members only). */
  reads(channelId: string): Promise<{ reads: { user_id: string; channel_seq: number }[] }> {
    return this.request('GET', `/v1/channels/${encodeURIComponent(channelId)}/reads`);
  }

  /** No push notifications for this channel's messages until `untilMs` (members only; at most 366 days ahead). */
  mute(channelId: string, untilMs: number): Promise<{ channel_id: string; until_ms: number }> {
    return this.request('PUT', `/v1/channels/${encodeURIComponent(channelId)}/mute`, { until_ms: untilMs });
  }

  unmute(channelId: string): Promise<object> {
    return this.request('DELETE', `/v1/channels/${encodeURIComponent(channelId)}/mute`);
  }

  addMember(channelId: string, userId: string): Promise<object> {
    return this.request('POST', `/v1/channels/${encodeURIComponent(channelId)}/members`, { user_id: userId });
  }

  removeMember(channelId: string, userId: string): Promise<object> {
    return this.request('DELETE', `/v1/channels/${encodeURIComponent(channelId)}/members/${encodeURIComponent(userId)}`);
  }

  postMessage(channelId: string, clientMsgId: string, text: string): Promise<{ message_id: string; channel_seq: number; created_at_ms: number }> {
    return this.request('POST', `/v1/channels/${encodeURIComponent(channelId)}/messages`, { client_msg_id: clientMsgId, text });
  }

  history(channelId: string, options: { before?: string; limit?: number } = {}): Promise<{ messages: import('../proto/client-frames.ts').Message[]; has_more: boolean }> {
    const q = new URLSearchParams();
    if (options.before) q.set('before', options.before);
    if (options.limit !== undefined) q.set('limit', String(options.limit));
    const qs = q.toString();
    return this.request('GET', `/v1/channels/${encodeURIComponent(channelId)}/messages${qs ? `?${qs}` : ''}`);
  }

  /**
   * Blocks a user: nothing they send reaches you (DM, groups, typing, read receipts), you appear
   * offline to each other, a friendship ends, and neither can send in your DM until you unblock.
   * Repeating it is harmless; at most 1,000 blocked users (BLOCK_LIST_FULL).
   */
  block(userId: string): Promise<object> {
    return this.request('POST', '/v1/blocks', { user_id: userId });
  }

  /** Lifts a block (a friendship it ended stays ended); harmless when there is none. */
  unblock(userId: string): Promise<object> {
    return this.request('DELETE', `/v1/blocks/${encodeURIComponent(userId)}`);
  }

  /** The users you block, e.g. to collapse their messages in a group's history. */
  blocks(): Promise<{ blocked: string[] }> {
    return this.request('GET', '/v1/blocks');
  }

  /** The server's VAPID public key, for `pushManager.subscribe({ applicationServerKey })`. */
  pushPublicKey(): Promise<{ key: string }> {
    return this.request('GET', '/v1/push/vapid-public-key');
  }

  /**
   * Registers this device's Web Push subscription (`subscription.toJSON()` of the browser's
   * PushSubscription): notifications for messages that arrive while the device is offline go
   * there. Registering again replaces it.
   */
  registerPush(deviceId: string, subscription: { endpoint: string; keys: { p256dh: string; auth: string } }): Promise<object> {
    return this.request('PUT', `/v1/devices/${encodeURIComponent(deviceId)}/push`, { provider: 'webpush', endpoint: subscription.endpoint, keys: subscription.keys });
  }

  /** Stops push to this device; harmless when it has none. */
  unregisterPush(deviceId: string): Promise<object> {
    return this.request('DELETE', `/v1/devices/${encodeURIComponent(deviceId)}/push`);
  }
}
