import { Rejection } from '../runtime/errors.ts';

/** Error codes of the chat contract. Clients branch on these; they never change meaning. */
export const ChatCodes = {
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  ALREADY_EXISTS: 'ALREADY_EXISTS',
  GROUP_FULL: 'GROUP_FULL',
  BLOCK_LIST_FULL: 'BLOCK_LIST_FULL',
  /** A new device's push registration past MAX_PUSH_DEVICES (actors/push/push-subscriptions.ts). */
  PUSH_DEVICES_FULL: 'PUSH_DEVICES_FULL',
  TEXT_TOO_LONG: 'TEXT_TOO_LONG',
  RATE_LIMITED: 'RATE_LIMITED',
  BAD_FRAME: 'BAD_FRAME',
  /**
   * A WebSocket frame nesting deeper than chat.v1.ClientFrame allows (proto/frame-depth.ts),
   * refused before it is decoded; like BAD_FRAME, the socket is then closed (1008).
   */
  FRAME_TOO_DEEP: 'FRAME_TOO_DEEP',
  OVERLOADED: 'OVERLOADED',
  UNAVAILABLE: 'UNAVAILABLE',
  TIMEOUT: 'TIMEOUT',
  INTERNAL: 'INTERNAL',
} as const;

export type ChatCode = (typeof ChatCodes)[keyof typeof ChatCodes];

export function reject(code: ChatCode, message: string, options?: { retryAfterMs?: number }): Rejection {
  return new Rejection(code, message, options);
}

/** HTTP status for a code; anything unknown is a server fault. */
export function httpStatusFor(code: string): number {
  switch (code) {
    case ChatCodes.INVALID_ARGUMENT:
    case ChatCodes.TEXT_TOO_LONG:
      return 400;
    case ChatCodes.UNAUTHENTICATED:
      return 401;
    case ChatCodes.FORBIDDEN:
      return 403;
    case ChatCodes.NOT_FOUND:
      return 404;
    case ChatCodes.ALREADY_EXISTS:
      return 409;
    case ChatCodes.GROUP_FULL:
    case ChatCodes.BLOCK_LIST_FULL:
    case ChatCodes.PUSH_DEVICES_FULL:
      return 422;
    case ChatCodes.RATE_LIMITED:
      return 429;
    case ChatCodes.OVERLOADED:
    case ChatCodes.UNAVAILABLE:
    case 'STOPPED':
    case 'FENCED':
      return 503;
    case ChatCodes.TIMEOUT:
      return 504;
    default:
      return 500;
  }
}

/** Codes a client may retry as is (the request was not, or not certainly, carried out). */
export function isRetryable(code: string): boolean {
  return code === ChatCodes.OVERLOADED || code === ChatCodes.UNAVAILABLE || code === ChatCodes.TIMEOUT || code === 'STOPPED' || code === 'FENCED';
}
