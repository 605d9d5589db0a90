import type uWSTypes from 'uWebSockets.js';
import { isCoded, Rejection } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Connection, ConnectionHandler } from './connection.ts';
import { CorsPolicy, PREFLIGHT_HEADERS } from './cors.ts';
import { errorBody, HttpError, requestIdOf, type HttpRequest, type HttpResponse, type HttpRouter } from './http.ts';
import { nativeUws } from './uws.ts';

export interface GatewayOptions {
  readonly host: string;
  readonly port: number;
  readonly wsPath: string;
  readonly router: HttpRouter;
  readonly log: Logger;
  /** Largest WebSocket message accepted; a larger one closes the socket (1009) without buffering it. */
  readonly maxPayloadBytes: number;
  /**
   * Bytes a socket may hold unsent in this process after a write: past it the peer is not
   * reading and the socket is closed at once, without a close frame. The application keeps
   * far below it through `bufferedAmount` and `notifyDrain`; this is the bound for a dead peer.
   */
  readonly maxUnsentBytes: number;
  /** Largest HTTP body; a larger one gets 413 on its declared length, or as soon as the bytes read exceed it. */
  readonly maxHttpBodyBytes: number;
  /** Close a socket that sent nothing for this long (0: never). */
  readonly idleTimeoutMs: number;
  /** Maps an error code to an HTTP status (codes the application defines). */
  readonly statusForCode: (code: string) => number;
  /** Browser origins allowed to call the API and open sockets (default: none, see cors.ts). */
  readonly cors?: CorsPolicy;
  readonly onConnection: (connection: Connection) => ConnectionHandler;
}

interface SocketData {
  conn?: SocketConnection;
  remoteAddress: string;
}

const CLOSE_SILENT = 4008;

/**
 * Unsent bytes across the node's sockets: the bound past which a peer counts as not reading, and
 * the most any one socket held since the metrics last read it.
 * @internal
 */
class UnsentBytes {
  private peakBytes = 0;
  /** Sockets closed for holding more than `max` unsent bytes. */
  closedUnread = 0;

  constructor(readonly max: number) {}

  /** Records what a socket holds after a write; whether that is within the bound. */
  within(bytes: number): boolean {
    if (bytes > this.peakBytes) this.peakBytes = bytes;
    return bytes <= this.max;
  }

  takePeak(): number {
    const p = this.peakBytes;
    this.peakBytes = 0;
    return p;
  }
}

/**
 * Frames sent during one turn of the event loop are written per socket in one corked burst at
 * the end of the turn: an ack and a delivery for the same client then cost one syscall, not two.
 * @internal
 */
class WriteCoalescer {
  private readonly pending = new Set<SocketConnection>();
  private scheduled = false;

  add(conn: SocketConnection): void {
    this.pending.add(conn);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    for (const conn of this.pending) conn.flush();
    this.pending.clear();
  }
}

class SocketConnection implements Connection {
  open = true;
  handler!: ConnectionHandler;
  lastHeardMs = Date.now();
  silent = false;
  /** Frames waiting for the end of this turn; allocated only while there are some. */
  private outbox: Uint8Array[] | undefined;
  private outboxBytes = 0;
  /** The bound of a pending `notifyDrain`, or -1. */
  private drainBelow = -1;

  constructor(
    readonly id: number,
    readonly remoteAddress: string,
    private readonly ws: uWSTypes.WebSocket<SocketData>,
    private readonly coalescer: WriteCoalescer,
    private readonly unsent: UnsentBytes,
    private readonly log: Logger,
  ) {}

  send(bytes: Uint8Array): 'sent' | 'buffered' | 'dropped' | 'closed' {
    if (!this.open) return 'closed';
    if (!this.outbox) {
      this.outbox = [];
      this.coalescer.add(this);
    }
    this.outbox.push(bytes);
    this.outboxBytes += bytes.byteLength;
    return 'buffered';
  }

  notifyDrain(lowWaterBytes: number): void {
    if (!this.open) return;
    this.drainBelow = lowWaterBytes;
    // Checked at the end of this turn, after the frames queued in it are written.
    this.coalescer.add(this);
  }

  flush(): void {
    const frames = this.outbox;
    this.outbox = undefined;
    this.outboxBytes = 0;
    if (!this.open) return;
    if (frames?.length === 1) this.ws.send(frames[0]!, true, false);
    else if (frames) {
      this.ws.cork(() => {
        for (const f of frames) this.ws.send(f, true, false);
      });
    }
    this.written();
  }

  /**
   * After a write, or when uWS wrote some of what the socket held (its drain event): the bound
   * on unsent bytes, then a drain the application asked for.
   */
  written(): void {
    const held = this.ws.getBufferedAmount();
    if (!this.unsent.within(held)) {
      // Whatever the application queues, a peer that reads keeps this near zero: one that lets
      // it grow past the bound is gone or hostile, and each byte here is ours to hold. Closed
      // without a close frame, which would only queue behind what it does not read.
      this.unsent.closedUnread++;
      this.log.warn({ connection: this.id, remote: this.remoteAddress, unsent_bytes: held, max: this.unsent.max }, 'closing a socket whose peer does not read');
      this.ws.close();
      return;
    }
    if (this.drainBelow >= 0 && held <= this.drainBelow) {
      this.drainBelow = -1;
      this.handler.onDrain();
    }
  }

  bufferedAmount(): number {
    return this.open ? this.ws.getBufferedAmount() + this.outboxBytes : 0;
  }

  close(code: number, reason = ''): void {
    if (!this.open) return;
    this.flush(); // an error frame sent just before closing must still go out first
    if (this.open) this.ws.end(code, reason); // (the flush closes a peer that does not read)
  }
}

/**
 * HTTP API and WebSocket endpoint on one port, on native uWebSockets.js. Knows bytes and JSON,
 * not chat: each socket gets a ConnectionHandler from the application.
 *
 * Silent sockets are found by one sweep over all connections rather than a timer each: a
 * million idle sockets then cost one interval, not a million timers.
 */
export class Gateway {
  private readonly app: uWSTypes.TemplatedApp;
  private listenSocket: uWSTypes.us_listen_socket | undefined;
  private readonly connections = new Set<SocketConnection>();
  private readonly coalescer = new WriteCoalescer();
  private readonly unsent: UnsentBytes;
  private nextId = 1;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly uws = nativeUws();
  private readonly cors: CorsPolicy;
  boundPort = 0;

  constructor(private readonly options: GatewayOptions) {
    this.cors = options.cors ?? CorsPolicy.OFF;
    this.unsent = new UnsentBytes(options.maxUnsentBytes);
    this.app = this.uws.App();
    this.app.ws<SocketData>(options.wsPath, {
      maxPayloadLength: options.maxPayloadBytes,
      // The same bound in uWS: a frame it would queue past it is dropped and the socket shut,
      // and `written` closes it at the end of that write anyway.
      maxBackpressure: options.maxUnsentBytes,
      closeOnBackpressureLimit: 1,
      idleTimeout: 0,
      sendPingsAutomatically: false,
      compression: this.uws.DISABLED,
      upgrade: (res, req, context) => {
        if (!this.cors.allows(req.getHeader('origin'), req.getHeader('host'))) {
          res.writeStatus(statusLine(403)).writeHeader('content-type', 'application/json').end(JSON.stringify(errorBody('FORBIDDEN', 'origin not allowed')));
          return;
        }
        res.upgrade<SocketData>(
          { remoteAddress: Buffer.from(res.getRemoteAddressAsText()).toString() },
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
          context,
        );
      },
      open: (ws) => {
        const data = ws.getUserData();
        const conn = new SocketConnection(this.nextId++, data.remoteAddress, ws, this.coalescer, this.unsent, options.log);
        data.conn = conn;
        this.connections.add(conn);
        conn.handler = options.onConnection(conn);
      },
      message: (ws, message, isBinary) => {
        const conn = ws.getUserData().conn!;
        conn.lastHeardMs = Date.now();
        // The ArrayBuffer is only valid during this call; handlers decode synchronously.
        conn.handler.onMessage(new Uint8Array(message), isBinary);
      },
      drain: (ws) => ws.getUserData().conn?.written(),
      pong: (ws) => {
        const conn = ws.getUserData().conn;
        if (conn) conn.lastHeardMs = Date.now();
      },
      close: (ws, code) => {
        const conn = ws.getUserData().conn;
        if (!conn) return;
        conn.open = false;
        this.connections.delete(conn);
        conn.handler.onClose(code, conn.silent);
      },
    });
    this.app.any('/*', (res, req) => this.http(res, req));
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** The most bytes one socket held unsent after a write since the previous call (which reset it). */
  takeUnsentPeak(): number {
    return this.unsent.takePeak();
  }

  /** Sockets closed so far for holding more than `maxUnsentBytes` unsent (their peers did not read). */
  get closedUnread(): number {
    return this.unsent.closedUnread;
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(this.options.host, this.options.port, (socket) => {
        if (!socket) {
          reject(new Error(`cannot listen on ${this.options.host}:${this.options.port}`));
          return;
        }
        this.listenSocket = socket;
        this.boundPort = this.uws.us_socket_local_port(socket);
        if (this.options.idleTimeoutMs > 0) {
          const every = Math.max(100, Math.min(1_000, Math.floor(this.options.idleTimeoutMs / 10)));
          this.sweeper = setInterval(() => this.sweepSilent(), every);
          this.sweeper.unref();
        }
        resolve(this.boundPort);
      });
    });
  }

  /** Stops accepting new connections; open ones stay. */
  stopAccepting(): void {
    if (this.listenSocket) {
      this.uws.us_listen_socket_close(this.listenSocket);
      this.listenSocket = undefined;
    }
    if (this.sweeper) clearInterval(this.sweeper);
  }

  /** Closes every socket with `code` (1001 going away, 1012 service restart). */
  closeAll(code: number, reason: string): void {
    for (const conn of [...this.connections]) conn.close(code, reason);
  }

  /** Frees the app so the process can exit. */
  close(): void {
    this.stopAccepting();
    (this.app as unknown as { close?: () => void }).close?.();
  }

  private sweepSilent(): void {
    const cutoff = Date.now() - this.options.idleTimeoutMs;
    for (const conn of this.connections) {
      if (conn.lastHeardMs < cutoff) {
        conn.silent = true;
        conn.close(CLOSE_SILENT, 'no heartbeat');
      }
    }
  }

  private http(res: uWSTypes.HttpResponse, req: uWSTypes.HttpRequest): void {
    // uWS request objects die at the first await: copy what we need now.
    const method = req.getMethod().toUpperCase();
    const path = req.getUrl();
    const query = new URLSearchParams(req.getQuery() ?? '');
    const authorization = req.getHeader('authorization');
    const declaredLength = req.getHeader('content-length');
    const remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString();
    const origin = req.getHeader('origin');
    const host = req.getHeader('host');
    const requestId = requestIdOf(req.getHeader('x-request-id'));
    const startedMs = performance.now();
    const allowOrigin = this.cors.allowOriginHeader(origin);
    const corsHeaders = (): void => {
      if (allowOrigin === undefined) return;
      res.writeHeader('access-control-allow-origin', allowOrigin);
      // Not safelisted: without this a page could not see when a 429 lets it try again.
      res.writeHeader('access-control-expose-headers', 'Retry-After, X-Request-Id');
      res.writeHeader('vary', 'Origin');
    };
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const reply = (r: HttpResponse): void => {
      // Debug, not info: one line per request would be the busiest thing in the log under load.
      if (this.options.log.isLevelEnabled('debug')) this.options.log.debug({ request_id: requestId, method, path, status: r.status, ms: Math.round((performance.now() - startedMs) * 10) / 10 }, 'http request');
      if (aborted) return;
      res.cork(() => {
        res.writeStatus(statusLine(r.status));
        corsHeaders();
        res.writeHeader('x-request-id', requestId);
        for (const [k, v] of Object.entries(r.headers ?? {})) res.writeHeader(k, v);
        if (r.raw) {
          res.writeHeader('content-type', r.raw.contentType);
          res.end(r.raw.bytes);
          return;
        }
        res.writeHeader('content-type', 'application/json');
        res.end(r.body === undefined ? '' : JSON.stringify(r.body));
      });
    };
    // A browser's preflight: answered here for an allowed origin, refused for another one; an
    // OPTIONS without an Origin is nobody's preflight and goes to the router like any method.
    if (method === 'OPTIONS' && origin.length > 0) {
      if (allowOrigin === undefined) return reply({ status: 403, body: errorBody('FORBIDDEN', 'origin not allowed') });
      res.cork(() => {
        res.writeStatus(statusLine(204));
        corsHeaders();
        for (const [k, v] of PREFLIGHT_HEADERS) res.writeHeader(k, v);
        res.end();
      });
      return;
    }
    // A cross-origin call the list does not allow is refused before it does anything (cors.ts says why).
    if (!this.cors.allows(origin, host)) return reply({ status: 403, body: errorBody('FORBIDDEN', 'origin not allowed') });
    const found = this.options.router.match(method, path);
    if (found === 'not_found') return reply({ status: 404, body: errorBody('NOT_FOUND', `no route ${method} ${path}`) });
    if (found === 'method_not_allowed') return reply({ status: 405, body: errorBody('METHOD_NOT_ALLOWED', `${method} not allowed on ${path}`) });

    const max = this.options.maxHttpBodyBytes;
    const tooLarge = (): void => {
      // Answer at once and drop the connection: reading the rest would be buffering it.
      if (aborted) return;
      aborted = true;
      res.cork(() => {
        res.writeStatus(statusLine(413));
        corsHeaders();
        res.writeHeader('x-request-id', requestId);
        res.writeHeader('content-type', 'application/json');
        res.end(JSON.stringify(errorBody('PAYLOAD_TOO_LARGE', `body over ${max} bytes`)), true);
      });
    };
    // A declared length over the bound is refused before a byte of the body is read; a body sent
    // without one (chunked) is still counted as it arrives.
    if (/^\d+$/.test(declaredLength) && Number(declaredLength) > max) return tooLarge();

    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    res.onData((chunk, isLast) => {
      if (refused) return;
      size += chunk.byteLength;
      if (size > max) {
        refused = true;
        tooLarge();
        return;
      }
      chunks.push(Buffer.from(chunk.slice(0)));
      if (!isLast) return;
      const raw = Buffer.concat(chunks);
      const parentLog = this.options.log;
      let log: Logger | undefined;
      const request: HttpRequest = {
        method,
        path,
        params: found.params,
        query,
        authorization,
        remoteAddress,
        requestId,
        get log(): Logger {
          return (log ??= parentLog.child({ request_id: requestId }));
        },
        json: () => {
          if (raw.length === 0) return {};
          try {
            return JSON.parse(raw.toString('utf8')) as unknown;
          } catch {
            throw new HttpError(400, 'INVALID_ARGUMENT', 'body is not valid JSON');
          }
        },
      };
      void this.run(found.handler, request).then(reply);
    });
  }

  private async run(handler: (r: HttpRequest) => Promise<HttpResponse> | HttpResponse, req: HttpRequest): Promise<HttpResponse> {
    try {
      return await handler(req);
    } catch (err) {
      if (err instanceof HttpError) return { status: err.status, body: errorBody(err.code, err.message) };
      if (isCoded(err)) {
        const status = this.options.statusForCode(err.code);
        // An expected refusal (load shedding answers 503) is an answer, not a fault: no log line
        // per request while the node sheds load.
        if (status >= 500 && !err.expected) req.log.error({ err, path: req.path }, 'http handler failed');
        // Whole seconds (RFC 9110), rounded up so a client that waits them is not refused again.
        const retryAfter = err instanceof Rejection && err.retryAfterMs !== undefined ? { 'retry-after': String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))) } : undefined;
        return { status, body: errorBody(err.code, err.message), ...(retryAfter ? { headers: retryAfter } : {}) };
      }
      req.log.error({ err, path: req.path }, 'http handler failed');
      return { status: 500, body: errorBody('INTERNAL', 'internal error') };
    }
  }
}

const REASONS: Record<number, string> = {
  200: 'OK', 201: 'Created', 204: 'No Content', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden',
  404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict', 413: 'Payload Too Large', 422: 'Unprocessable Entity',
  429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

function statusLine(status: number): string {
  return `${status} ${REASONS[status] ?? 'Status'}`;
}
