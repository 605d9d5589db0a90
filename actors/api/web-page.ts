import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { errorBody, HttpRouter, StaticFiles, type HttpResponse } from '../../runtime/gateway/index.ts';

/**
 * The chat page's policy. `script-src` allows only files from this origin, never inline script,
 * plus `'unsafe-eval'`: protobufjs (inside the SDK bundle) builds its frame encoders with
 * `new Function` when it loads, and no option turns that off; the page has no inline script or
 * handler and never evaluates strings itself, so eval is reachable only through that library.
 * `connect-src` takes any ws:/wss: because login's discovery may name another node of the cluster
 * (another origin) for the socket; HTTP calls stay on this origin.
 */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self' 'unsafe-eval'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self' ws: wss:",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Where `npm run build` puts the page (bin/build-page.ts): dist/page/, found from this module
 * whether it runs from source (actors/api/ under tsx) or compiled (dist/actors/api/).
 */
export function defaultPageDir(): string | undefined {
  const candidates = ['../../page/', '../../dist/page/'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  return candidates.find((dir) => existsSync(`${dir}index.html`));
}

const NOT_BUILT: HttpResponse = {
  status: 404,
  body: errorBody('NOT_FOUND', 'the web page is not built: run `npm run build` (npm start does)'),
};

/**
 * Serves the web chat page at `/` and its hashed files at `/assets/NAME`. The page talks to the
 * API of the same origin, so it needs no CORS. Without a built page, `/` says how to build it.
 */
export function addWebPage(router: HttpRouter, dir: string | undefined = defaultPageDir()): HttpRouter {
  const files = dir === undefined ? undefined : StaticFiles.load(dir, { hashed: (p) => p.startsWith('assets/'), headers: { 'content-security-policy': PAGE_CSP, 'referrer-policy': 'no-referrer' } });
  const serve = (rel: string): HttpResponse => (files ? (files.response(rel) ?? { status: 404, body: errorBody('NOT_FOUND', `no file ${rel}`) }) : NOT_BUILT);
  return router.add('GET', '/', () => serve('index.html')).add('GET', '/assets/:file', (req) => serve(`assets/${req.params.file ?? ''}`));
}
