/**
 * Typed errors with stable codes. Callers branch on `code`, never on message text.
 * Transport edges (HTTP, WebSocket, gRPC) map codes to their own status values.
 */
export class CodedError extends Error {
  readonly code: string;
  /** True when the error is an expected refusal (bad input, no permission) rather than a fault. */
  readonly expected: boolean;

  constructor(code: string, message: string, options: { cause?: unknown; expected?: boolean } = {}) {
    // Refusals and flow-control errors are answers, produced by the thousand under load; a stack
    // trace would cost more than the request. Faults keep theirs.
    const cheap = options.expected === true || FLOW_CODES.has(code);
    const limit = Error.stackTraceLimit;
    if (cheap) Error.stackTraceLimit = 0;
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (cheap) Error.stackTraceLimit = limit;
    this.name = 'CodedError';
    this.code = code;
    this.expected = options.expected ?? false;
  }
}

const FLOW_CODES = new Set(['OVERLOADED', 'TIMEOUT', 'UNAVAILABLE', 'STOPPED', 'FENCED', 'SEQ_CONFLICT', 'REQUIREMENT_MISSING', 'RATE_LIMITED']);

/**
 * A refusal a handler returns on purpose. It reaches the caller as is and, unlike any other
 * thrown error, does not restart the actor: its state is fine, the request was not.
 */
export class Rejection extends CodedError {
  /** When asking again may succeed, ms from now (a throttle's block); HTTP says it as `Retry-After`. */
  readonly retryAfterMs: number | undefined;

  constructor(code: string, message: string, options: { retryAfterMs?: number } = {}) {
    super(code, message, { expected: true });
    this.name = 'Rejection';
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** Codes the runtime itself produces. */
export const RuntimeCodes = {
  OVERLOADED: 'OVERLOADED',
  TIMEOUT: 'TIMEOUT',
  UNAVAILABLE: 'UNAVAILABLE',
  ACTOR_FAILED: 'ACTOR_FAILED',
  STOPPED: 'STOPPED',
  UNKNOWN_KIND: 'UNKNOWN_KIND',
  FENCED: 'FENCED',
  SEQ_CONFLICT: 'SEQ_CONFLICT',
  CONFIG: 'CONFIG',
} as const;

export function isCoded(err: unknown): err is CodedError {
  return err instanceof CodedError;
}

/** The code of any thrown value; unknown faults become INTERNAL. */
export function codeOf(err: unknown): string {
  return err instanceof CodedError ? err.code : 'INTERNAL';
}
