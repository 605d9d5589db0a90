/**
 * Helpers for the security tests (test/security): raw HTTP calls that keep what a client sees
 * (status, error code and message, headers, time taken), and counters read from GET /metrics.
 */
import type { ServerHandle } from '../support/server.ts';

export interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  /** `error.code` of an error answer, else ''. */
  readonly code: string;
  /** `error.message` of an error answer, else ''. */
  readonly message: string;
  readonly headers: Headers;
  /** From sending the request to reading the whole answer, ms. */
  readonly ms: number;
}

export async function call(
  server: ServerHandle | string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const base = typeof server === 'string' ? server : server.baseUrl;
  const started = performance.now();
  const res = await fetch(base + path, {
    method,
    headers: {
      ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...options.headers,
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await res.text();
  const ms = performance.now() - started;
  const body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  const error = body.error as { code?: string; message?: string } | undefined;
  return { status: res.status, body, code: error?.code ?? '', message: error?.message ?? '', headers: res.headers, ms };
}

export function login(server: ServerHandle | string, username: string, password: string): Promise<Answer> {
  return call(server, 'POST', '/v1/sessions', { body: { username, password } });
}

/** The value of an unlabelled counter or gauge in the node's GET /metrics. */
export async function metric(server: ServerHandle | string, name: string): Promise<number> {
  const base = typeof server === 'string' ? server : server.baseUrl;
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`no ${name} in /metrics`);
  return Number(line.slice(name.length + 1));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
