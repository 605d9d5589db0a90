/**
 * The web chat page parleyd serves at `/` (web/, built into dist/page/ by `npm run build`),
 * driven in headless chromium as two people would use it: two browser contexts (two people,
 * one of them on a phone-sized screen) sign up, find and befriend each other, see each other
 * online, chat in a DM (unread badge, read receipt, typing), make a group and chat there, and
 * see the other go offline. A screenshot of each step is kept in test-artifacts/page/
 * (git-ignored). Also: `/` and its assets come with their content types, caching headers and
 * the Content-Security-Policy, and the page runs under that policy without a violation.
 *
 * `npm test` builds first; alone: `npm run build && npx ava test/page/page.test.ts`. The browser
 * is Debian's chromium (installed through the project's apt path when missing), driven by
 * playwright-core; no browser is ever downloaded. Every wait is bounded by STEP_MS.
 */
import test from 'ava';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ensureChromium } from '../support/chromium.ts';
import { ROOT, startServer, type ServerHandle } from '../support/server.ts';

const PAGE_DIR = join(ROOT, 'dist/page');
const SHOTS = join(ROOT, 'test-artifacts/page');
/** Every wait on the page is bounded by this; the friend list is re-read every 4 s. */
const STEP_MS = 15_000;

/** Fails with a clear message when the page is missing or older than its sources. */
function assertPageFresh(): void {
  const index = join(PAGE_DIR, 'index.html');
  if (!existsSync(index)) throw new Error('dist/page/ is missing: run `npm run build` first (npm test does)');
  const built = statSync(index).mtimeMs;
  const sources = ['web/app.ts', 'web/app.css', 'web/index.html'].map((f) => join(ROOT, f)).filter((f) => statSync(f).mtimeMs > built);
  if (sources.length > 0) throw new Error(`dist/page/ is older than ${sources.join(', ')}: run \`npm run build:page\``);
}

interface Person {
  readonly name: string;
  readonly context: BrowserContext;
  readonly page: Page;
  /** Uncaught errors and console errors (a CSP violation is one) in this person's page. */
  readonly problems: string[];
}

async function openPerson(browser: Browser, baseUrl: string, name: string, viewport: { width: number; height: number }): Promise<Person> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  await page.goto(`${baseUrl}/`);
  await page.waitForSelector('html[data-ready="true"]');
  return { name, context, page, problems };
}

let shot = 0;
async function screenshot(p: Person, step: string): Promise<void> {
  shot++;
  await p.page.screenshot({ path: join(SHOTS, `${String(shot).padStart(2, '0')}-${p.name.replace(/_.*/, '')}-${step}.png`), fullPage: true });
}

async function signUp(p: Person): Promise<void> {
  await p.page.getByLabel('Username', { exact: true }).fill(p.name);
  await p.page.getByLabel('Password', { exact: true }).fill('page-test-password');
  await p.page.getByRole('button', { name: 'Sign up' }).click();
  await p.page.getByText(`Signed in as ${p.name}`).waitFor();
  await p.page.locator('#conn.ok').waitFor();
  await p.page.locator('#auth').waitFor({ state: 'hidden' });
}

async function befriend(p: Person, other: string, expect: RegExp): Promise<void> {
  await p.page.getByLabel('Find people by username').fill(other);
  await p.page.getByRole('button', { name: 'Find', exact: true }).click();
  await p.page.getByRole('button', { name: `Add ${other} as friend` }).click();
  await p.page.locator('#find-result').getByText(expect).waitFor();
}

const friendItem = (p: Person, other: string, presence: 'online' | 'offline') => p.page.locator(`#friends li[data-presence="${presence}"] button[data-user="${other}"]`);

test('web page - served at / with content types, caching and CSP', async (t) => {
  assertPageFresh();
  const server = await startServer();
  try {
    const index = await fetch(`${server.baseUrl}/`);
    t.is(index.status, 200);
    t.is(index.headers.get('content-type'), 'text/html; charset=utf-8');
    t.is(index.headers.get('cache-control'), 'no-cache', 'the page is revalidated, so a deploy shows at once');
    t.regex(index.headers.get('content-security-policy') ?? '', /script-src 'self' 'unsafe-eval'/);
    t.is(index.headers.get('x-content-type-options'), 'nosniff');
    const html = await index.text();
    const js = /src="(\/assets\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    const css = /href="(\/assets\/app-[A-Z0-9]+\.css)"/.exec(html)?.[1];
    t.truthy(js && css, 'index.html names hashed assets');
    const jsRes = await fetch(`${server.baseUrl}${js}`);
    t.is(jsRes.status, 200);
    t.is(jsRes.headers.get('content-type'), 'text/javascript; charset=utf-8');
    t.is(jsRes.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    t.is((await fetch(`${server.baseUrl}${css}`)).headers.get('content-type'), 'text/css; charset=utf-8');
    const missing = await fetch(`${server.baseUrl}/assets/nope.js`);
    t.is(missing.status, 404);
    t.is((await fetch(`${server.baseUrl}/assets/..%2Findex.html`)).status, 404, 'no path leaves the folder');
    t.is((await fetch(`${server.baseUrl}/healthz`)).status, 200, 'the API is still there');
  } finally {
    await server.stop();
  }
});

test('web page - two people in chromium sign up, befriend, chat 1:1 and in a group, see presence, typing and receipts', async (t) => {
  assertPageFresh();
  t.timeout(10 * 60_000, 'installing chromium took too long');
  const executablePath = await ensureChromium();
  t.timeout(150_000, 'the browser run took too long');
  await mkdir(SHOTS, { recursive: true });
  for (const f of await readdir(SHOTS)) if (f.endsWith('.png')) await import('node:fs/promises').then((fs) => fs.rm(join(SHOTS, f)));
  let server: ServerHandle | undefined;
  let browser: Browser | undefined;
  try {
    server = await startServer();
    browser = await chromium.launch({ executablePath, headless: true, timeout: 30_000 });
    const suffix = Math.random().toString(36).slice(2, 8);
    // A on a laptop-sized window, B on a phone-sized one.
    const a = await openPerson(browser, server.baseUrl, `ann_${suffix}`, { width: 1100, height: 760 });
    const b = await openPerson(browser, server.baseUrl, `bob_${suffix}`, { width: 390, height: 844 });

    // 1. Sign up (each logs in at once and connects).
    await screenshot(a, 'sign-in-form');
    await signUp(a);
    await signUp(b);
    await screenshot(b, 'signed-up-phone');

    // 2. Find each other and become friends; both are online.
    await befriend(a, b.name, /Friend request sent/);
    await befriend(b, a.name, /are friends/);
    await friendItem(a, b.name, 'online').waitFor();
    await friendItem(b, a.name, 'online').waitFor();
    await screenshot(a, 'friends-online');

    // 3. A opens the DM and writes; B sees an unread badge, opens it, and A sees it read.
    await friendItem(a, b.name, 'online').click();
    await a.page.getByRole('heading', { name: b.name }).waitFor();
    await a.page.locator('#member-form').waitFor({ state: 'hidden' });
    await a.page.getByLabel('Message', { exact: true }).fill('hello bob');
    await a.page.getByRole('button', { name: 'Send' }).click();
    await a.page.locator('#messages li', { hasText: 'hello bob' }).waitFor();
    await b.page.locator('#chats').getByLabel('1 unread').waitFor();
    await screenshot(b, 'dm-unread');
    await b.page.locator('#chats button', { hasText: a.name }).click();
    await b.page.locator('#messages li', { hasText: 'hello bob' }).waitFor();
    await a.page.locator('#receipt').getByText(`Seen by ${b.name}`).waitFor();
    t.is(await b.page.locator('#chats .badge').count(), 0, 'opening the DM cleared its unread count');
    await screenshot(a, 'dm-seen');

    // 4. B types: A sees it; B answers.
    await b.page.getByLabel('Message', { exact: true }).pressSequentially('hi ann', { delay: 20 });
    await a.page.locator('#typing').getByText(`${b.name} is typing…`).waitFor();
    await screenshot(a, 'dm-typing');
    await b.page.getByLabel('Message', { exact: true }).press('Enter');
    await a.page.locator('#messages li', { hasText: 'hi ann' }).waitFor();
    await screenshot(b, 'dm-reply-phone');

    // 5. A makes a group, adds B, and writes there; B sees it and answers.
    await a.page.getByLabel('New group').fill('Team');
    await a.page.getByRole('button', { name: 'Create group' }).click();
    await a.page.getByRole('heading', { name: 'Team' }).waitFor();
    await a.page.getByLabel('Add member').selectOption({ label: b.name });
    await a.page.getByRole('button', { name: 'Add', exact: true }).click();
    await a.page.getByLabel('Message', { exact: true }).fill('welcome to the team');
    await a.page.getByRole('button', { name: 'Send' }).click();
    await b.page.locator('#chats button', { hasText: 'Team' }).click();
    await b.page.locator('#messages li', { hasText: 'welcome to the team' }).waitFor();
    await b.page.getByLabel('Message', { exact: true }).fill('glad to be here');
    await b.page.getByLabel('Message', { exact: true }).press('Enter');
    await a.page.locator('#messages li', { hasText: 'glad to be here' }).waitFor();
    await a.page.locator('#receipt').getByText(`Seen by ${b.name}`).waitFor();
    await screenshot(a, 'group-chat');
    await screenshot(b, 'group-chat-phone');

    // 6. B leaves: A sees B offline.
    t.deepEqual(b.problems, [], 'no error or CSP violation in B’s page');
    await b.context.close();
    await friendItem(a, b.name, 'offline').waitFor();
    await screenshot(a, 'friend-offline');
    t.deepEqual(a.problems, [], 'no error or CSP violation in A’s page');

    const shots = (await readdir(SHOTS)).filter((f) => f.endsWith('.png'));
    t.is(shots.length, shot, `screenshots in ${SHOTS}`);
    t.log(`screenshots: ${SHOTS}`);
  } finally {
    await browser?.close();
    await server?.stop();
  }
});
