import { CodedError } from '../errors.ts';

export const TransportErrorCodes = {
  /** The per-peer queue is over its bound: the peer is slow or unreachable. Shed load. */
  BACKPRESSURE: 'BACKPRESSURE',
  /** The transport was stopped. */
  STOPPED: 'STOPPED',
  /** A frame could not be decoded: a bug or an incompatible peer, never a transient fault. */
  MALFORMED: 'MALFORMED',
  /** The listener could not bind its address. */
  LISTEN_FAILED: 'LISTEN_FAILED',
} as const;

export type TransportErrorCode = (typeof TransportErrorCodes)[keyof typeof TransportErrorCodes];

export class TransportError extends CodedError {
  declare readonly code: TransportErrorCode;

  constructor(code: TransportErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, options);
    this.name = 'TransportError';
  }
}
