/**
 * The web chat page parleyd serves at `/` (built by bin/build-page.ts): sign up or log in, find
 * people, friends with presence, DMs and groups, history, unread counts, read receipts, typing.
 * Talks to the API of its own origin through the client SDK; no framework, the DOM by hand.
 *
 * Each tab is its own device (a device id in sessionStorage, which tabs do not share), so a
 * second tab gets the same messages live as another phone would; the login itself is shared
 * through localStorage, so a new tab does not ask for the password again.
 *
 * Example: `npm ci && npm start`, then open http://127.0.0.1:8080/ in two browsers (test/page
 * drives exactly that in chromium).
 */
import { ParleyApiError, ParleyClient, ParleyHttp, type LoginResult, type Message } from '../client/index.ts';

type ChannelRow = Awaited<ReturnType<ParleyHttp['channels']>>['channels'][number];
type FriendRow = Awaited<ReturnType<ParleyHttp['friends']>>['friends'][number];

interface Session {
  readonly user_id: string;
  readonly username: string;
  token: string;
  expires_at_ms: number;
  readonly servers: string[];
}

const SESSION_KEY = 'parley.session';
const DEVICE_KEY = 'parley.device';
const HISTORY_PAGE = 30;
/** Friend requests and new conversations have no push: the lists are re-read this often. */
const LIST_REFRESH_MS = 4_000;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} is missing from index.html`);
  return e as T;
};

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function deviceId(): string {
  let id = sessionStorage.getItem(DEVICE_KEY);
  if (!id) {
    id = `web-${crypto.randomUUID().slice(0, 12)}`;
    sessionStorage.setItem(DEVICE_KEY, id);
  }
  return id;
}

function loadSession(): Session | undefined {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) ?? 'null') as Session | null;
    return s && s.expires_at_ms > Date.now() ? s : undefined;
  } catch {
    return undefined;
  }
}

const errorText = (err: unknown): string => (err instanceof ParleyApiError ? err.message : err instanceof Error ? err.message : String(err));
const timeText = (ms: number): string => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

/** Everything the page shows for one login. */
class ChatView {
  private readonly client: ParleyClient;
  private readonly friends = new Map<string, FriendRow>();
  private readonly channels = new Map<string, ChannelRow>();
  /** Each channel's loaded messages, oldest first. */
  private readonly messages = new Map<string, Message[]>();
  private readonly hasOlder = new Map<string, boolean>();
  /** Each channel's members' read marks (user id → channel_seq). */
  private readonly reads = new Map<string, Map<string, number>>();
  private readonly names = new Map<string, string>();
  private readonly typingUntil = new Map<string, number>();
  private current: string | undefined;
  private refreshTimer: ReturnType<typeof setInterval> | undefined;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly http: ParleyHttp,
    private readonly session: Session,
  ) {
    this.names.set(session.user_id, session.username);
    this.client = new ParleyClient({
      servers: session.servers,
      token: session.token,
      tokenExpiresAtMs: session.expires_at_ms,
      refreshToken: () => http.refresh(),
      deviceId: deviceId(),
    });
    this.client.on('token', (g) => {
      this.session.token = g.token;
      this.session.expires_at_ms = g.expires_at_ms;
      localStorage.setItem(SESSION_KEY, JSON.stringify(this.session));
    });
    this.client.on('welcome', () => {
      setConn('ok', 'Connected');
      // Whatever moved while the socket was away: unread counts, new conversations, presence.
      void this.refreshLists();
    });
    this.client.on('disconnect', (d) => setConn(d.willReconnect ? 'reconnecting' : 'offline', d.willReconnect ? 'Reconnecting…' : 'Offline'));
    this.client.on('delivery', (d) => this.onMessage(d.message));
    this.client.on('presence', (p) => {
      const f = this.friends.get(p.user_id);
      if (!f) return;
      f.online = p.online;
      this.renderFriends();
    });
    this.client.on('typing', (t) => {
      this.typingUntil.set(`${t.channel_id} ${t.user_id}`, Date.now() + t.expires_in_ms);
      this.renderTyping();
      clearTimeout(this.typingTimer);
      this.typingTimer = setTimeout(() => this.renderTyping(), t.expires_in_ms + 50);
    });
    this.client.on('readReceipt', (r) => {
      const marks = this.reads.get(r.channel_id) ?? new Map<string, number>();
      marks.set(r.user_id, Math.max(marks.get(r.user_id) ?? 0, r.channel_seq));
      this.reads.set(r.channel_id, marks);
      const ch = this.channels.get(r.channel_id);
      // Read on another of my devices: this one shows it read too.
      if (ch && r.user_id === this.session.user_id && r.channel_seq > ch.last_read_seq) {
        ch.last_read_seq = r.channel_seq;
        ch.unread_count = this.unreadAfter(r.channel_id, r.channel_seq);
        this.renderChannels();
      }
      if (r.channel_id === this.current) this.renderReceipt();
    });
    this.client.on('error', (e) => announce(`Error: ${e.message}`));
  }

  async start(): Promise<void> {
    setConn('reconnecting', 'Connecting…');
    await this.refreshLists();
    this.refreshTimer = setInterval(() => void this.refreshLists(), LIST_REFRESH_MS);
    // connect() rejects only when the client gives up; the disconnect listener shows that.
    this.client.connect().catch((err: unknown) => announce(`Not connected: ${errorText(err)}`));
  }

  stop(): void {
    clearInterval(this.refreshTimer);
    this.client.close();
  }

  private async refreshLists(): Promise<void> {
    try {
      const [{ friends }, { channels }] = await Promise.all([this.http.friends(), this.http.channels()]);
      this.friends.clear();
      for (const f of friends) {
        this.friends.set(f.user_id, f);
        this.names.set(f.user_id, f.display_name || f.username);
      }
      for (const c of channels) {
        const known = this.channels.get(c.channel_id);
        // A mark this page already sent may be newer than the server's answer to an earlier read.
        if (known && known.last_read_seq > c.last_read_seq) {
          c.last_read_seq = known.last_read_seq;
          c.unread_count = this.unreadAfter(c.channel_id, c.last_read_seq);
        }
        this.channels.set(c.channel_id, c);
      }
      await this.learnNames(channels.flatMap((c) => c.member_ids));
      this.renderFriends();
      this.renderChannels();
      this.renderMemberSelect();
    } catch (err) {
      if (err instanceof ParleyApiError && err.status === 401) return signOut('Your login ended; log in again.');
      // A failed refresh is retried on the next tick; the connection badge already shows trouble.
    }
  }

  private async learnNames(ids: string[]): Promise<void> {
    const unknown = [...new Set(ids)].filter((id) => !this.names.has(id));
    const profiles = await Promise.all(unknown.map((id) => this.http.user(id).catch(() => undefined)));
    for (const p of profiles) if (p) this.names.set(p.user_id, p.display_name || p.username);
  }

  private nameOf(userId: string): string {
    return this.names.get(userId) ?? userId;
  }

  private titleOf(ch: ChannelRow): string {
    if (ch.kind === 'group') return ch.name || 'Group';
    const other = ch.member_ids.find((m) => m !== this.session.user_id);
    return other ? this.nameOf(other) : 'Direct message';
  }

  /** Messages of others after `seq` among those loaded; the server's count when none are loaded. */
  private unreadAfter(channelId: string, seq: number): number {
    const list = this.messages.get(channelId);
    if (!list) return 0;
    return list.filter((m) => m.channel_seq > seq && m.sender_id !== this.session.user_id).length;
  }

  // ---- people

  async find(username: string): Promise<void> {
    const out = $('find-result');
    out.replaceChildren('Searching…');
    try {
      const p = await this.http.findUser(username);
      if (p.user_id === this.session.user_id) {
        out.replaceChildren('That is you.');
        return;
      }
      this.names.set(p.user_id, p.display_name || p.username);
      const isFriend = this.friends.has(p.user_id);
      const add = el('button', { type: 'button' }, isFriend ? `Message ${p.username}` : `Add ${p.username} as friend`);
      add.addEventListener('click', () => void (isFriend ? this.openDm(p.user_id) : this.addFriend(p.user_id, p.username)));
      out.replaceChildren(el('span', {}, `${p.display_name || p.username} `), add);
    } catch (err) {
      out.replaceChildren(err instanceof ParleyApiError && err.status === 404 ? `No one is called ${username}.` : errorText(err));
    }
  }

  private async addFriend(userId: string, username: string): Promise<void> {
    const out = $('find-result');
    try {
      const { status } = await this.http.addFriend(userId);
      out.replaceChildren(status === 'friends' ? `You and ${username} are friends.` : `Friend request sent to ${username}.`);
      await this.refreshLists();
    } catch (err) {
      out.replaceChildren(errorText(err));
    }
  }

  async openDm(userId: string): Promise<void> {
    try {
      const { channel_id } = await this.http.openDm(userId);
      if (!this.channels.has(channel_id)) await this.refreshLists();
      await this.open(channel_id);
    } catch (err) {
      announce(errorText(err));
    }
  }

  async createGroup(name: string): Promise<void> {
    const { channel_id } = await this.http.createGroup(name, []);
    await this.refreshLists();
    await this.open(channel_id);
  }

  async addMember(userId: string): Promise<void> {
    if (!this.current) return;
    await this.http.addMember(this.current, userId);
    announce(`${this.nameOf(userId)} was added.`);
    await this.refreshLists();
  }

  // ---- a conversation

  async open(channelId: string): Promise<void> {
    this.current = channelId;
    const ch = this.channels.get(channelId);
    $('chat-title').textContent = ch ? this.titleOf(ch) : 'Conversation';
    $('member-form').hidden = ch?.kind !== 'group';
    $('send-form').hidden = false;
    if (!this.messages.has(channelId)) {
      this.messages.set(channelId, []);
      await this.loadOlder();
    }
    const { reads } = await this.http.reads(channelId).catch(() => ({ reads: [] }));
    const marks = this.reads.get(channelId) ?? new Map<string, number>();
    for (const r of reads) marks.set(r.user_id, Math.max(marks.get(r.user_id) ?? 0, r.channel_seq));
    this.reads.set(channelId, marks);
    this.renderChannels();
    this.renderMemberSelect();
    this.renderMessages(true);
    this.markRead();
    $('send-text').focus();
  }

  /** Scroll-back: the page of history before the oldest loaded message. */
  async loadOlder(): Promise<void> {
    const id = this.current;
    if (!id) return;
    const list = this.messages.get(id) ?? [];
    const page = await this.http.history(id, { limit: HISTORY_PAGE, ...(list[0] ? { before: list[0].message_id } : {}) });
    const known = new Set(list.map((m) => m.message_id));
    const older = page.messages.filter((m) => !known.has(m.message_id)).reverse();
    this.messages.set(id, [...older, ...list]);
    this.hasOlder.set(id, page.has_more);
    if (id === this.current) this.renderMessages(list.length === 0);
  }

  async send(text: string): Promise<void> {
    const id = this.current;
    if (!id) return;
    const ack = await this.client.send(id, text);
    this.onMessage({ message_id: ack.message_id, channel_id: id, sender_id: this.session.user_id, client_msg_id: ack.client_msg_id, text, created_at_ms: ack.created_at_ms, channel_seq: ack.channel_seq });
  }

  typed(): void {
    if (this.current) this.client.typing(this.current);
  }

  private onMessage(m: Message): void {
    const list = this.messages.get(m.channel_id);
    const ch = this.channels.get(m.channel_id);
    if (!ch) {
      // A conversation someone just started with me: the list read brings its name and members.
      void this.refreshLists();
    }
    if (list) {
      if (list.some((x) => x.message_id === m.message_id)) return;
      list.push(m);
      list.sort((a, b) => a.channel_seq - b.channel_seq);
    }
    const mine = m.sender_id === this.session.user_id;
    if (ch && m.channel_seq > ch.last_seq) ch.last_seq = m.channel_seq;
    // The sender has stopped typing once the message is in.
    this.typingUntil.delete(`${m.channel_id} ${m.sender_id}`);
    if (m.channel_id === this.current) {
      this.renderMessages(true);
      this.renderTyping();
      if (!mine) this.markRead();
    } else if (!mine) {
      if (ch) ch.unread_count++;
      announce(`New message from ${this.nameOf(m.sender_id)}${ch ? ` in ${this.titleOf(ch)}` : ''}: ${m.text}`);
    }
    this.renderChannels();
  }

  /** Marks the open conversation read up to its newest message, while the tab is seen. */
  markRead(): void {
    const id = this.current;
    const ch = id ? this.channels.get(id) : undefined;
    if (!id || !ch || document.visibilityState !== 'visible') return;
    const last = this.messages.get(id)?.at(-1)?.channel_seq ?? 0;
    const seq = Math.max(last, ch.last_seq);
    if (seq <= ch.last_read_seq && ch.unread_count === 0) return;
    this.client.markRead(id, seq);
    ch.last_read_seq = seq;
    ch.unread_count = 0;
    this.renderChannels();
  }

  // ---- rendering

  private renderFriends(): void {
    const items = [...this.friends.values()]
      .sort((a, b) => Number(b.online) - Number(a.online) || a.username.localeCompare(b.username))
      .map((f) => {
        const state = f.online ? 'online' : 'offline';
        const b = el('button', { type: 'button', 'data-user': f.username }, el('span', { class: `dot ${state}`, role: 'img', 'aria-label': state }), `${f.display_name || f.username}`, el('span', { class: 'visually-hidden' }, `, ${state}; open a direct message`));
        b.addEventListener('click', () => void this.openDm(f.user_id));
        return el('li', { 'data-presence': state }, b);
      });
    $('friends').replaceChildren(...(items.length ? items : [el('li', { class: 'note' }, 'No friends yet: find someone above.')]));
  }

  private renderChannels(): void {
    const items = [...this.channels.values()]
      .sort((a, b) => b.last_seq - a.last_seq || this.titleOf(a).localeCompare(this.titleOf(b)))
      .map((c) => {
        const unread = c.unread_count > 0 ? el('span', { class: 'badge', 'aria-label': `${c.unread_count} unread` }, String(c.unread_count)) : '';
        const b = el('button', { type: 'button', 'data-channel': c.channel_id, 'aria-current': String(c.channel_id === this.current) }, `${c.kind === 'group' ? '# ' : ''}${this.titleOf(c)}`, unread);
        b.addEventListener('click', () => void this.open(c.channel_id));
        return el('li', {}, b);
      });
    $('chats').replaceChildren(...(items.length ? items : [el('li', { class: 'note' }, 'No conversations yet.')]));
  }

  private renderMemberSelect(): void {
    const ch = this.current ? this.channels.get(this.current) : undefined;
    const options = [...this.friends.values()].filter((f) => !ch?.member_ids.includes(f.user_id)).map((f) => el('option', { value: f.user_id }, f.display_name || f.username));
    $('member-select').replaceChildren(...options);
  }

  private renderMessages(stickToBottom: boolean): void {
    const id = this.current;
    if (!id) return;
    const box = $('messages');
    const fromBottom = box.scrollHeight - box.scrollTop;
    const list = this.messages.get(id) ?? [];
    box.replaceChildren(
      ...list.map((m) =>
        el('li', { class: m.sender_id === this.session.user_id ? 'mine' : '', 'data-seq': String(m.channel_seq) }, el('span', { class: 'meta' }, `${this.nameOf(m.sender_id)} · ${timeText(m.created_at_ms)}`), m.text),
      ),
    );
    // Older messages go above without moving what the reader is looking at.
    box.scrollTop = stickToBottom ? box.scrollHeight : box.scrollHeight - fromBottom;
    $('older').hidden = !this.hasOlder.get(id);
    this.renderReceipt();
  }

  /** Who has read my newest message in the open conversation. */
  private renderReceipt(): void {
    const id = this.current;
    const out = $('receipt');
    const lastMine = id ? this.messages.get(id)?.filter((m) => m.sender_id === this.session.user_id).at(-1) : undefined;
    if (!id || !lastMine) return void out.replaceChildren();
    const readers = [...(this.reads.get(id) ?? new Map<string, number>())].filter(([u, seq]) => u !== this.session.user_id && seq >= lastMine.channel_seq).map(([u]) => this.nameOf(u));
    out.replaceChildren(readers.length ? `Seen by ${readers.join(', ')}` : 'Sent');
  }

  private renderTyping(): void {
    const now = Date.now();
    const who = [...this.typingUntil]
      .filter(([key, until]) => until > now && key.startsWith(`${this.current} `))
      .map(([key]) => this.nameOf(key.slice(key.indexOf(' ') + 1)));
    $('typing').textContent = who.length === 0 ? '' : `${who.join(', ')} ${who.length === 1 ? 'is' : 'are'} typing…`;
  }
}

// ---- page wiring

let view: ChatView | undefined;
const http = new ParleyHttp(location.origin);

function setConn(kind: 'ok' | 'reconnecting' | 'offline', text: string): void {
  const e = $('conn');
  e.hidden = false;
  e.className = `conn ${kind}`;
  e.textContent = text;
}

function announce(text: string): void {
  $('announce').textContent = text;
}

function signOut(reason = ''): void {
  view?.stop();
  view = undefined;
  localStorage.removeItem(SESSION_KEY);
  $('app').hidden = true;
  $('auth').hidden = false;
  $('logout').hidden = true;
  $('whoami').hidden = true;
  $('conn').hidden = true;
  $('auth-error').textContent = reason;
  $('auth-username').focus();
}

async function enter(session: Session): Promise<void> {
  http.setToken(session.token);
  $('auth').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  $('whoami').hidden = false;
  $('whoami').textContent = `Signed in as ${session.username}`;
  view = new ChatView(http, session);
  await view.start();
  $('find-username').focus();
}

/** Runs `work` for a form's submit, with its submit buttons off meanwhile and errors shown. */
function onSubmit(formId: string, work: (form: HTMLFormElement, submitter: HTMLElement | null) => Promise<void>, errorOut?: HTMLElement): void {
  const form = $<HTMLFormElement>(formId);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const buttons = [...form.querySelectorAll('button')];
    for (const b of buttons) b.disabled = true;
    work(form, ev.submitter)
      .catch((err: unknown) => (errorOut ? (errorOut.textContent = errorText(err)) : announce(errorText(err))))
      .finally(() => {
        for (const b of buttons) b.disabled = false;
      });
  });
}

onSubmit(
  'auth-form',
  async (_form, submitter) => {
    const username = $<HTMLInputElement>('auth-username').value.trim();
    const password = $<HTMLInputElement>('auth-password').value;
    $('auth-error').textContent = '';
    if ((submitter as HTMLButtonElement | null)?.value === 'signup') await http.signup(username, password);
    const login: LoginResult = await http.login(username, password);
    const session: Session = { user_id: login.user_id, username, token: login.token, expires_at_ms: login.expires_at_ms, servers: login.servers.map((s) => s.ws_url) };
    localStorage.setItem(SESSION_KEY, JSON.stringify(session));
    $<HTMLInputElement>('auth-password').value = '';
    await enter(session);
  },
  $('auth-error'),
);

onSubmit('find-form', async () => view?.find($<HTMLInputElement>('find-username').value.trim()));
onSubmit('group-form', async () => {
  const input = $<HTMLInputElement>('group-name');
  await view?.createGroup(input.value.trim());
  input.value = '';
});
onSubmit('member-form', async () => view?.addMember($<HTMLSelectElement>('member-select').value));
onSubmit('send-form', async () => {
  const input = $<HTMLInputElement>('send-text');
  const text = input.value;
  input.value = '';
  try {
    await view?.send(text);
  } catch (err) {
    // Give the text back rather than lose it.
    input.value = text;
    throw err;
  }
  input.focus();
});
$('send-text').addEventListener('input', () => view?.typed());
$('older').addEventListener('click', () => void view?.loadOlder());
$('messages').addEventListener('scroll', (ev) => {
  if ((ev.target as HTMLElement).scrollTop === 0 && !$('older').hidden) void view?.loadOlder();
});
$('logout').addEventListener('click', () => {
  void http.logout().catch(() => undefined);
  signOut();
});
document.addEventListener('visibilitychange', () => view?.markRead());

const saved = loadSession();
if (saved) void enter(saved);
else signOut();
document.documentElement.dataset.ready = 'true';
