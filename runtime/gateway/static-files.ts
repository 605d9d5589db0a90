import { readdirSync, readFileSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import type { HttpResponse } from './http.ts';

/** Content types by extension: what a built web page is made of. Anything else is served as bytes. */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/** A year, the longest `max-age` caches honour: a hashed name never changes content. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** Names that change content (index.html) are revalidated on every load, so a deploy shows at once. */
const REVALIDATE = 'no-cache';

export interface StaticFilesOptions {
  /** Whether a file (path relative to the folder, `/`-separated) has a content hash in its name. */
  readonly hashed: (relPath: string) => boolean;
  /** Headers on every file (e.g. a Content-Security-Policy). */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * A folder of built files served from memory: read once at start (a web page is a few hundred
 * KiB), so a request never touches the disk and a path can only name a file that was in the
 * folder (no `..` escapes; there is nothing to escape to).
 *
 * Guarantees: each file carries its content type, `x-content-type-options: nosniff`, and
 * `cache-control` immutable for a year when `hashed` says its name has a hash, `no-cache` otherwise.
 *
 * @example
 * const files = StaticFiles.load('dist/page', { hashed: (p) => p.startsWith('assets/') });
 * files?.response('index.html'); // { status: 200, raw: { contentType: 'text/html; …', bytes }, headers }
 */
export class StaticFiles {
  private constructor(private readonly files: ReadonlyMap<string, HttpResponse>) {}

  /** The folder's files, or undefined when it does not exist (the page was not built). */
  static load(dir: string, options: StaticFilesOptions): StaticFiles | undefined {
    let entries;
    try {
      entries = readdirSync(dir, { recursive: true, withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const files = new Map<string, HttpResponse>();
    for (const e of entries) {
      if (!e.isFile()) continue;
      const full = join(e.parentPath, e.name);
      const rel = relative(dir, full).split(sep).join('/');
      files.set(rel, {
        status: 200,
        raw: { contentType: CONTENT_TYPES[extname(e.name)] ?? 'application/octet-stream', bytes: readFileSync(full) },
        headers: {
          'cache-control': options.hashed(rel) ? IMMUTABLE : REVALIDATE,
          'x-content-type-options': 'nosniff',
          ...options.headers,
        },
      });
    }
    return new StaticFiles(files);
  }

  /** The response for a file (path relative to the folder), or undefined when there is none. */
  response(relPath: string): HttpResponse | undefined {
    return this.files.get(relPath);
  }

  get size(): number {
    return this.files.size;
  }
}
