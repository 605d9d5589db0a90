/**
 * The browser build of the SDK (`npm run build:client`, dist/browser/parley-client.js) works in a
 * real browser against a real parleyd: headless chromium loads a page from one origin, the page
 * imports the bundle and talks to parleyd on another origin, so every call crosses CORS for real.
 * In the page, with the browser's own fetch and WebSocket: two users sign up, log in (the
 * WebSocket URL comes from login's discovery), befriend, open a DM, connect; one sends, the other
 * gets the delivery, marks it read (the sender gets the receipt, the HTTP unread count drops) and
 * sees the sender typing; an API refusal arrives as a ParleyApiError with its code. The same page
 * from an origin parleyd does not list can neither call the API nor open a socket. And the
 * bundle's declarations type-check a small browser app that imports it.
 *
 * `npm test` builds first; alone: `npm run build:client && npx ava test/client/browser-bundle.test.ts`.
 * The browser is Debian's chromium (installed through the project's apt path when missing),
 * driven by playwright-core; no browser is ever downloaded.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser, type Page } from 'playwright-core';
import type * as Sdk from '../../client/index.ts';
import { ensureChromium } from '../support/chromium.ts';
import { ROOT, startServer, type ServerHandle } from '../support/server.ts';

const OUT_DIR = join(ROOT, 'dist/browser');
const BUNDLE = join(OUT_DIR, 'parley-client.js');
const DECLARATIONS = join(OUT_DIR, 'parley-client.d.ts');
/** Every wait inside the page and on the browser is bounded by this. */
const STEP_MS = 10_000;

/** Fails with a clear message when the bundle is missing or older than the sources it is built from. */
function assertBundleFresh(): void {
  if (!existsSync(BUNDLE)) throw new Error('dist/browser/ is missing: run `npm run build:client` first (npm test does)');
  const built = statSync(BUNDLE).mtimeMs;
  const sources = [
    ...readdirSync(join(ROOT, 'client')).map((f) => join(ROOT, 'client', f)),
    ...readdirSync(join(ROOT, 'proto')).filter((f) => f.startsWith('client-')).map((f) => join(ROOT, 'proto', f)),
  ];
  const newer = sources.filter((f) => statSync(f).mtimeMs > built);
  if (newer.length > 0) throw new Error(`dist/browser/ is older than ${newer.join(', ')}: run \`npm run build:client\``);
}

/** Serves the page and the bundle (with its source map) from its own origin, 127.0.0.1:<port>. */
async function servePage(): Promise<{ server: Server; port: number }> {
  const files: Record<string, { path: string; type: string }> = {
    '/parley-client.js': { path: BUNDLE, type: 'text/javascript; charset=utf-8' },
    '/parley-client.js.map': { path: `${BUNDLE}.map`, type: 'application/json' },
  };
  // The page exposes the bundle's exports to the test; `ready` tells that the import ran.
  const html = `<!doctype html><meta charset="utf-8"><title>parley bundle</title>
<script type="module">
  import * as parley from '/parley-client.js';
  window.parley = parley;
  document.title = 'ready';
</script>`;
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
      return;
    }
    const file = files[path];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    readFile(file.path).then(
      (body) => res.writeHead(200, { 'content-type': file.type }).end(body),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { server, port: (server.address() as AddressInfo).port };
}

/** Opens `url` and waits until the page's module imported the bundle. */
async function openPage(browser: Browser, url: string, pageErrors: string[]): Promise<Page> {
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (err) => pageErrors.push(err.message));
  // tsx compiles this file with esbuild's keepNames, which wraps named functions in `__name(...)`
  // calls; page.evaluate ships the functions below as source text, so the page needs the helper.
  await page.addInitScript('globalThis.__name = (fn) => fn;');
  await page.goto(url);
  await page.waitForFunction(() => (globalThis as unknown as { document: { title: string } }).document.title === 'ready', undefined, { timeout: STEP_MS });
  return page;
}

/** What the page reports back; plain data, since it crosses from the browser to the test. */
interface ScenarioResult {
  readonly bundleExports: string[];
  readonly wsUrls: string[];
  readonly ids: { readonly a: string; readonly b: string };
  readonly friendStatus: string[];
  readonly dmChannel: string;
  readonly ack: { readonly channel_id: string; readonly channel_seq: number };
  readonly delivery: { readonly channel_id: string; readonly sender_id: string; readonly text: string; readonly channel_seq: number; readonly message_id: string };
  readonly ackMessageId: string;
  readonly unreadBefore: number;
  readonly receipt: Sdk.ReadReceipt;
  readonly unreadAfter: { readonly last_read_seq: number; readonly unread_count: number };
  readonly typing: Sdk.TypingNotice;
  readonly history: string[];
  readonly refusal: { readonly name: string; readonly status: number; readonly code: string };
  /** A's valid token, for the foreign-origin page: only its origin may get it refused there. */
  readonly tokenA: string;
}

/**
 * Runs in the page: the whole chat path through the bundle, with the browser's fetch and
 * WebSocket (no WebSocket option is passed). Every wait is bounded by `stepMs`.
 */
async function chatScenario(args: { baseUrl: string; stepMs: number }): Promise<ScenarioResult> {
  const parley = (globalThis as unknown as { parley: typeof Sdk }).parley;
  const within = <T>(what: string, p: Promise<T>): Promise<T> =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing in ${args.stepMs} ms`)), args.stepMs))]);
  // The next value a listener gets, then unsubscribed: `once<Sdk.Delivery>('delivery', (l) => client.on('delivery', l))`.
  const once = <T>(what: string, subscribe: (listener: (value: T) => void) => () => void): Promise<T> =>
    within(
      what,
      new Promise<T>((resolve) => {
        const off = subscribe((value) => {
          off();
          resolve(value);
        });
      }),
    );

  const suffix = Math.random().toString(36).slice(2, 10);
  const signUp = async (name: string): Promise<{ http: Sdk.ParleyHttp; login: Sdk.LoginResult; userId: string }> => {
    const http = new parley.ParleyHttp(args.baseUrl);
    const { user_id } = await within('signup', http.signup(name, 'browser-password'));
    const login = await within('login', http.login(name, 'browser-password'));
    return { http, login, userId: user_id };
  };
  const a = await signUp(`bra_${suffix}`);
  const b = await signUp(`brb_${suffix}`);

  const friendStatus = [(await within('friend request', a.http.addFriend(b.userId))).status, (await within('friend accept', b.http.addFriend(a.userId))).status];
  const { channel_id: dm } = await within('open dm', a.http.openDm(b.userId));

  const connect = async (user: typeof a, deviceId: string): Promise<Sdk.ParleyClient> => {
    const client = new parley.ParleyClient({
      servers: user.login.servers.map((s) => s.ws_url),
      token: user.login.token,
      deviceId,
      reconnect: false,
    });
    await within(`connect ${deviceId}`, client.connect());
    return client;
  };
  const ca = await connect(a, 'browser-a');
  const cb = await connect(b, 'browser-b');
  try {
    const delivered = once<Sdk.Delivery>('delivery', (l) => cb.on('delivery', l));
    const ack = await within('send', ca.send(dm, 'hello from the browser'));
    const delivery = await delivered;
    const channelOf = async (user: typeof a): Promise<{ last_read_seq: number; unread_count: number }> => {
      const ch = (await within('channels', user.http.channels())).channels.find((c) => c.channel_id === dm);
      if (!ch) throw new Error('the DM is not in the channel list');
      return { last_read_seq: ch.last_read_seq, unread_count: ch.unread_count };
    };
    const unreadBefore = (await channelOf(b)).unread_count;

    const receipted = once<Sdk.ReadReceipt>('read receipt', (l) => ca.on('readReceipt', l));
    cb.markRead(dm, delivery.message.channel_seq);
    const receipt = await receipted;
    const unreadAfter = await channelOf(b);

    const typed = once<Sdk.TypingNotice>('typing notice', (l) => cb.on('typing', l));
    ca.typing(dm);
    const typing = await typed;

    const history = (await within('history', cb.history(dm))).messages.map((m) => m.text);

    let refusal = { name: 'none', status: 0, code: 'none' };
    try {
      await within('duplicate signup', a.http.signup(`bra_${suffix}`, 'browser-password'));
    } catch (err) {
      if (!(err instanceof parley.ParleyApiError)) throw err;
      refusal = { name: err.name, status: err.status, code: err.code };
    }

    return {
      bundleExports: Object.keys(parley).sort(),
      wsUrls: a.login.servers.map((s) => s.ws_url),
      ids: { a: a.userId, b: b.userId },
      friendStatus,
      dmChannel: dm,
      ack: { channel_id: ack.channel_id, channel_seq: ack.channel_seq },
      ackMessageId: ack.message_id,
      delivery: {
        channel_id: delivery.message.channel_id,
        sender_id: delivery.message.sender_id,
        text: delivery.message.text,
        channel_seq: delivery.message.channel_seq,
        message_id: delivery.message.message_id,
      },
      unreadBefore,
      receipt: { channel_id: receipt.channel_id, user_id: receipt.user_id, channel_seq: receipt.channel_seq },
      unreadAfter,
      typing: { channel_id: typing.channel_id, user_id: typing.user_id, expires_in_ms: typing.expires_in_ms },
      history,
      refusal,
      tokenA: a.login.token,
    };
  } finally {
    ca.close();
    cb.close();
  }
}

/**
 * Runs in a page whose origin parleyd does not allow: the browser itself must stop the API call
 * (no Access-Control-Allow-Origin) and parleyd must refuse the socket (403 on the upgrade).
 */
async function foreignOriginScenario(args: { baseUrl: string; wsUrl: string; token: string; stepMs: number }): Promise<{ http: string; ws: string }> {
  const parley = (globalThis as unknown as { parley: typeof Sdk }).parley;
  const within = <T>(what: string, p: Promise<T>): Promise<T> =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing in ${args.stepMs} ms`)), args.stepMs))]);
  const codeOf = (err: unknown): string => (err instanceof parley.ParleyApiError || err instanceof parley.ParleyError ? err.code : `unexpected ${String(err)}`);
  let http = 'allowed';
  try {
    await within('signup', new parley.ParleyHttp(args.baseUrl).signup(`brx_${Math.random().toString(36).slice(2, 10)}`, 'browser-password'));
  } catch (err) {
    http = codeOf(err);
  }
  let ws = 'allowed';
  const client = new parley.ParleyClient({ servers: [args.wsUrl], token: args.token, deviceId: 'foreign', reconnect: false });
  try {
    await within('connect', client.connect());
  } catch (err) {
    ws = codeOf(err);
  } finally {
    client.close();
  }
  return { http, ws };
}

test('browser bundle - a headless chromium page on another origin chats through the bundle: send, receive, read receipt, typing', async (t) => {
  assertBundleFresh();
  // A fresh machine installs chromium first (apt-get update and a few hundred MB of packages).
  t.timeout(10 * 60_000, 'installing chromium took too long');
  const executablePath = await ensureChromium();
  t.timeout(120_000, 'the browser run took too long');
  const page = await servePage();
  t.teardown(() => new Promise<void>((resolve) => page.server.close(() => resolve())));
  const pageOrigin = `http://127.0.0.1:${page.port}`;
  let server: ServerHandle | undefined;
  let browser: Browser | undefined;
  try {
    server = await startServer({ flags: { 'cors-origins': pageOrigin } });
    browser = await chromium.launch({ executablePath, headless: true, timeout: 30_000 });
    const pageErrors: string[] = [];
    const tab = await openPage(browser, `${pageOrigin}/`, pageErrors);
    const r = await tab.evaluate(chatScenario, { baseUrl: server.baseUrl, stepMs: STEP_MS });
    t.deepEqual(pageErrors, [], 'no uncaught error in the page');

    t.deepEqual(r.bundleExports, ['ParleyApiError', 'ParleyClient', 'ParleyError', 'ParleyHttp']);
    t.deepEqual(r.wsUrls, [server.wsUrl], "the socket URL came from login's discovery");
    t.deepEqual(r.friendStatus, ['pending', 'friends']);
    t.deepEqual(r.ack, { channel_id: r.dmChannel, channel_seq: 1 });
    t.deepEqual(r.delivery, { channel_id: r.dmChannel, sender_id: r.ids.a, text: 'hello from the browser', channel_seq: 1, message_id: r.ackMessageId });
    t.is(r.unreadBefore, 1);
    t.deepEqual(r.receipt, { channel_id: r.dmChannel, user_id: r.ids.b, channel_seq: 1 }, 'the sender got the read receipt');
    t.deepEqual(r.unreadAfter, { last_read_seq: 1, unread_count: 0 });
    t.deepEqual(r.typing, { channel_id: r.dmChannel, user_id: r.ids.a, expires_in_ms: 3_000 });
    t.deepEqual(r.history, ['hello from the browser']);
    t.deepEqual(r.refusal, { name: 'ParleyApiError', status: 409, code: 'ALREADY_EXISTS' }, 'an API refusal is readable across origins');

    // The same page from `localhost`, an origin parleyd was not told about. The socket gets A's
    // valid token (it connected above from the allowed origin), so only the origin can refuse it.
    const foreignErrors: string[] = [];
    const foreign = await openPage(browser, `http://localhost:${page.port}/`, foreignErrors);
    const refused = await foreign.evaluate(foreignOriginScenario, { baseUrl: server.baseUrl, wsUrl: server.wsUrl, token: r.tokenA, stepMs: STEP_MS });
    t.deepEqual(refused, { http: 'UNAVAILABLE', ws: 'UNAVAILABLE' }, 'the browser blocks the call and parleyd refuses the socket');
    t.deepEqual(foreignErrors, []);
  } finally {
    await browser?.close();
    await server?.stop();
  }
});

test('browser bundle - its declarations type-check a browser app that imports ParleyClient and ParleyHttp', async (t) => {
  assertBundleFresh();
  t.true(existsSync(DECLARATIONS), 'dist/browser/parley-client.d.ts exists');
  t.regex(await readFile(join(OUT_DIR, 'types/client/index.d.ts'), 'utf8'), /export \{ ParleyClient\b/);

  // A strict app with the DOM lib and no Node types, as a browser app's tsconfig would be.
  const dir = await mkdtemp(join(tmpdir(), 'parley-browser-app-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  await writeFile(
    join(dir, 'app.ts'),
    `import { ParleyClient, ParleyHttp, ParleyApiError, type Delivery } from ${JSON.stringify(BUNDLE)};
const http = new ParleyHttp('https://chat.example.com');
const { token, servers } = await http.login('alice', 'correct horse');
const client = new ParleyClient({ servers: servers.map((s) => s.ws_url), token, deviceId: 'tab' });
client.on('delivery', (d: Delivery) => console.log(d.message.text.toUpperCase(), d.inbox_seq + 1));
const unread: number = (await http.channels()).channels[0]?.unread_count ?? 0;
// @ts-expect-error the text of a message is a string
await client.send('channel', 42);
export const seen = [unread, ParleyApiError.name];
`,
  );
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: 'ES2022', lib: ['ES2022', 'DOM'], types: [], module: 'ESNext', moduleResolution: 'Bundler', skipLibCheck: false },
      files: ['app.ts'],
    }),
  );
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const result = await promisify(execFile)(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { timeout: 60_000 }).then(
    () => 'ok',
    (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`,
  );
  t.is(result, 'ok');
});
