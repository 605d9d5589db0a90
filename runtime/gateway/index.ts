/**
 * The network edge: one uWebSockets.js app serving a JSON HTTP API and a binary WebSocket
 * endpoint on one port. Generic: it hands bytes to per-socket handlers and JSON to routes.
 *
 * Guarantees: refuses to start on the package's JavaScript fallback; oversized WebSocket
 * messages close the socket without being buffered; oversized HTTP bodies get 413 on a declared
 * length over the bound or as soon as the bytes read cross it, never after buffering them
 * whole; every HTTP error body is `{"error":{"code","message"}}`; sockets that send nothing for
 * `idleTimeoutMs` are closed and reported as silent; a socket holding more than `maxUnsentBytes`
 * unsent after a write (its peer does not read) is closed at once, so no peer pins more than that
 * plus the frames of one turn; `notifyDrain` tells a handler when its socket's unsent bytes fell
 * to a bound, so the application can stop queueing well before; an HTTP request whose headers or
 * body do not arrive whole is closed by uWS after its 10 s idle timeout, which its 4 s timer ticks
 * make 8-12 s (measured: test/e2e/slowloris.test.ts); every HTTP response carries `X-Request-Id`
 * (the caller's when sane, else a fresh UUID: `requestIdOf`), and a handler's `req.log` binds it
 * as `request_id`. A route may answer bytes of its own type (`{ status, raw: { contentType, bytes } }`), as /metrics
 * and the static files do. A refusal that says when to come back (`Rejection.retryAfterMs`) gets
 * `Retry-After` in whole seconds. With an Origin allowlist set (CorsPolicy), an HTTP call or a
 * WebSocket upgrade from an origin off it is refused with 403 before it reaches a route.
 *
 * @example
 * ```ts
 * const router = new HttpRouter().add('GET', '/healthz', () => ({ status: 200, body: { ok: true } }));
 * const gw = new Gateway({ host: '127.0.0.1', port: 0, wsPath: '/ws', router, log, ...limits,
 *   statusForCode: () => 400, onConnection: (conn) => ({ onMessage: (b) => conn.send(b), onDrain() {}, onClose() {} }) });
 * await gw.listen();
 * ```
 */
export type { Connection, ConnectionHandler } from './connection.ts';
export { CorsPolicy } from './cors.ts';
export { Gateway, type GatewayOptions } from './gateway.ts';
export { errorBody, HttpError, HttpRouter, requestIdOf, type HttpHandler, type HttpRequest, type HttpResponse } from './http.ts';
export { StaticFiles, type StaticFilesOptions } from './static-files.ts';
export { nativeUws } from './uws.ts';
