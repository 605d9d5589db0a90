import { CodedError } from '../errors.ts';

export const SlotClaimErrorCodes = {
  /** The wanted slot is held by a live member (named in `holder`). */
  SLOT_HELD: 'SLOT_HELD',
  /** Every slot is held or still in its reuse gap. */
  SLOTS_EXHAUSTED: 'SLOTS_EXHAUSTED',
  /** The registry could not be read or written, or the claim kept losing races. */
  CLAIM_FAILED: 'CLAIM_FAILED',
} as const;

export type SlotClaimErrorCode = (typeof SlotClaimErrorCodes)[keyof typeof SlotClaimErrorCodes];

/** What a refused claim ran into, for callers that word the refusal in their own terms. */
export interface SlotClaimDetails {
  readonly slot?: number;
  readonly holder?: string;
  readonly size?: number;
  readonly held?: number;
  readonly cooling?: number;
  /** When the first cooling slot is free again (Unix ms, by the claimer's clock). */
  readonly freeAgainAtMs?: number;
}

export class SlotClaimError extends CodedError {
  declare readonly code: SlotClaimErrorCode;
  readonly details: SlotClaimDetails;

  constructor(code: SlotClaimErrorCode, message: string, details: SlotClaimDetails = {}, options: { cause?: unknown } = {}) {
    // A held or exhausted pool is an answer about the pool, not a fault of this process.
    super(code, message, { ...options, expected: code !== 'CLAIM_FAILED' });
    this.name = 'SlotClaimError';
    this.details = details;
  }
}
