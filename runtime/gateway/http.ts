import { randomUUID } from 'node:crypto';
import { CodedError } from '../errors.ts';
import type { Logger } from '../log.ts';

export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly authorization: string;
  readonly remoteAddress: string;
  /** The caller's `X-Request-Id` when sane (see requestIdOf), else a fresh one; echoed in the response. */
  readonly requestId: string;
  /** The node's logger with `request_id` bound (made on first use): log lines about this request go here. */
  readonly log: Logger;
  /** The body parsed as JSON; throws INVALID_ARGUMENT (400) when malformed. */
  json(): unknown;
}

export interface HttpResponse {
  readonly status: number;
  /** Sent as JSON, unless `raw` is given. */
  readonly body?: unknown;
  /** Bytes sent as they are with their own content type (a static file) instead of JSON. */
  readonly raw?: { readonly contentType: string; readonly bytes: Uint8Array };
  /** Further response headers (caching, security policy); lower-case names. */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * The request id to use: the caller's when it looks like an id (1..128 of letters, digits and
 * `-_.:`, so a proxy's UUID or trace id passes and nothing can inject into a log line or a
 * header), else a fresh UUID.
 */
export function requestIdOf(header: string): string {
  return /^[A-Za-z0-9._:-]{1,128}$/.test(header) ? header : randomUUID();
}

export type HttpHandler = (req: HttpRequest) => Promise<HttpResponse> | HttpResponse;

interface Route {
  readonly method: string;
  readonly parts: readonly string[];
  readonly handler: HttpHandler;
}

/** Method + path routing with `:name` segments; a tiny table is all the API needs. */
export class HttpRouter {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, handler: HttpHandler): this {
    this.routes.push({ method, parts: pattern.split('/').filter(Boolean), handler });
    return this;
  }

  match(method: string, path: string): { handler: HttpHandler; params: Record<string, string> } | 'not_found' | 'method_not_allowed' {
    const segs = path.split('/').filter(Boolean);
    let pathMatched = false;
    for (const r of this.routes) {
      if (r.parts.length !== segs.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segs.length && ok; i++) {
        const p = r.parts[i]!;
        if (p.startsWith(':')) params[p.slice(1)] = decodeURIComponent(segs[i]!);
        else ok = p === segs[i];
      }
      if (!ok) continue;
      pathMatched = true;
      if (r.method === method) return { handler: r.handler, params };
    }
    return pathMatched ? 'method_not_allowed' : 'not_found';
  }
}

/** The JSON error envelope every HTTP error uses: {"error":{"code","message"}}. */
export function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

export class HttpError extends CodedError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
  ) {
    super(code, message, { expected: true });
  }
}
