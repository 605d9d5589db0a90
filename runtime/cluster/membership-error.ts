import { CodedError } from '../errors.ts';

export const MembershipErrorCodes = {
  /** join() could not register this node (registry unreachable, or refused the write). */
  JOIN_FAILED: 'JOIN_FAILED',
  /**
   * Another live member is registered under this node id (its record is under another lease):
   * two processes with one id would both take its actors and its messages.
   */
  NODE_ID_TAKEN: 'NODE_ID_TAKEN',
  /** join() was called twice, or after leave(). */
  ALREADY_JOINED: 'ALREADY_JOINED',
  /** The member record is unusable (empty node id, node id with '/', non-finite numbers). */
  INVALID_MEMBER: 'INVALID_MEMBER',
  /** Creating or reading a shared value in the registry failed. */
  REGISTRY_FAILED: 'REGISTRY_FAILED',
} as const;

export type MembershipErrorCode = (typeof MembershipErrorCodes)[keyof typeof MembershipErrorCodes];

export class MembershipError extends CodedError {
  declare readonly code: MembershipErrorCode;

  constructor(code: MembershipErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, options);
    this.name = 'MembershipError';
  }
}
