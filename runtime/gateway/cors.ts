import { CodedError, RuntimeCodes } from '../errors.ts';

/**
 * Which web origins may call the HTTP API from a browser and open its WebSocket: a list of exact
 * origins (`https://app.example.com`, scheme, host and port as a browser sends them) or `*`.
 *
 * Guarantees: an allowed origin gets preflight answers and `Access-Control-Allow-Origin` on every
 * response; any other origin gets no CORS header at all (the browser then refuses the response).
 * With a list set, an HTTP call or WebSocket upgrade from another origin is refused (403); one
 * without an `Origin` header (a native app, a server), or from a page of this node itself, is
 * accepted.
 *
 * @example
 * const cors = CorsPolicy.parse('https://app.example.com,http://localhost:5173');
 * cors.allowOriginHeader('https://app.example.com'); // 'https://app.example.com'
 * cors.allowOriginHeader('https://evil.example');    // undefined
 */
export class CorsPolicy {
  static readonly OFF = new CorsPolicy(false, new Set());

  private constructor(
    private readonly any: boolean,
    private readonly origins: ReadonlySet<string>,
  ) {}

  /** `undefined` or empty: no origin is allowed (same-origin pages and native apps only). */
  static parse(text: string | undefined): CorsPolicy {
    const items = (text ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    if (items.length === 0) return CorsPolicy.OFF;
    if (items.includes('*')) {
      if (items.length > 1) throw new CodedError(RuntimeCodes.CONFIG, 'cors_origins: `*` stands alone, not in a list');
      return new CorsPolicy(true, new Set());
    }
    for (const o of items) {
      let origin: string | undefined;
      try {
        origin = new URL(o).origin;
      } catch {
        origin = undefined;
      }
      if (origin !== o || !/^https?:$/.test(new URL(o).protocol)) {
        throw new CodedError(RuntimeCodes.CONFIG, `cors_origins: "${o}" is not an origin (scheme://host[:port], no path or trailing slash)`);
      }
    }
    return new CorsPolicy(false, new Set(items));
  }

  get enabled(): boolean {
    return this.any || this.origins.size > 0;
  }

  /** The `Access-Control-Allow-Origin` value for a request from `origin`, or undefined for none. */
  allowOriginHeader(origin: string): string | undefined {
    if (origin.length === 0) return undefined;
    if (this.any) return '*';
    return this.origins.has(origin) ? origin : undefined;
  }

  /**
   * Whether a request (an HTTP call or a WebSocket upgrade) carrying this `Origin` header ('' when
   * absent) may go ahead. A page served by this node itself (the origin's host is the `Host` the
   * browser connected to) is same-origin, never cross-origin: always allowed, or a list set for
   * other apps would lock out the node's own page. A cross-site page cannot fake either header in
   * a browser. HTTP calls are refused too, not only left without CORS headers: a browser sends a
   * "simple" POST (a login form, text/plain) before CORS has a say, so a page elsewhere could make
   * its visitors' browsers try passwords from their own addresses.
   */
  allows(origin: string, host = ''): boolean {
    if (!this.enabled || origin.length === 0 || this.any) return true;
    return this.origins.has(origin) || (host.length > 0 && hostOf(origin) === host.toLowerCase());
  }
}

function hostOf(origin: string): string | undefined {
  try {
    return new URL(origin).host.toLowerCase();
  } catch {
    return undefined;
  }
}

/** What a preflight for an allowed origin answers (besides the origin itself). */
export const PREFLIGHT_HEADERS: readonly (readonly [string, string])[] = [
  ['access-control-allow-methods', 'GET, POST, PUT, PATCH, DELETE, OPTIONS'],
  ['access-control-allow-headers', 'authorization, content-type'],
  ['access-control-max-age', '600'],
];
