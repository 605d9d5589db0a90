import { CodedError } from '../runtime/errors.ts';

/**
 * Codes of everything that can go wrong while installing, starting or stopping a local
 * service. Callers (tests, the CLI) branch on these, never on message text.
 */
export const ServiceErrorCodes = {
  /** A package, a Maven artifact or a JVM could not be installed or found. */
  INSTALL_FAILED: 'SERVICE_INSTALL_FAILED',
  /** Installing needs root (apt-get) and we are not root. */
  INSTALL_NEEDS_ROOT: 'SERVICE_INSTALL_NEEDS_ROOT',
  /** Another process holds the install lock for longer than we were willing to wait. */
  INSTALL_LOCK_TIMEOUT: 'SERVICE_INSTALL_LOCK_TIMEOUT',
  /** A port the service must bind is already taken by someone else. */
  PORT_IN_USE: 'SERVICE_PORT_IN_USE',
  /** The process could not be spawned at all. */
  SPAWN_FAILED: 'SERVICE_SPAWN_FAILED',
  /** The process exited before it answered. */
  EXITED_EARLY: 'SERVICE_EXITED_EARLY',
  /** The process runs but did not answer within the allowed time. */
  NOT_READY: 'SERVICE_NOT_READY',
  /** The caller aborted the start (its AbortSignal fired); the process was killed. */
  ABORTED: 'SERVICE_ABORTED',
  /** The process did not go away, even after SIGKILL. */
  STOP_FAILED: 'SERVICE_STOP_FAILED',
  /** Options or environment values that cannot work (bad port, relative dir, ...). */
  BAD_CONFIG: 'SERVICE_BAD_CONFIG',
  /** The state file of the CLI is unreadable. */
  BAD_STATE: 'SERVICE_BAD_STATE',
} as const;

export type ServiceErrorCode = (typeof ServiceErrorCodes)[keyof typeof ServiceErrorCodes];

export class ServiceError extends CodedError {
  declare readonly code: ServiceErrorCode;
  /** Which service the error is about, when there is one. */
  readonly service: string | undefined;

  constructor(code: ServiceErrorCode, message: string, options: { service?: string; cause?: unknown } = {}) {
    super(code, message, options.cause === undefined ? {} : { cause: options.cause });
    this.name = 'ServiceError';
    this.service = options.service;
  }
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof ServiceError;
}
