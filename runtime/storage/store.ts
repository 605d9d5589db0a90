import type { Journal } from './journal.ts';
import type { KeyValueStore } from './key-value.ts';

/** A storage engine: one journal, one key-value store, one lifecycle. */
export interface Store {
  readonly journal: Journal;
  readonly kv: KeyValueStore;
  /** Human-readable engine description for logs and /healthz. */
  readonly describe: string;
  /** Flushes pending writes and releases files and connections. */
  close(): Promise<void>;
}

/** Codes a store reports; UNAVAILABLE is retryable, the others are answers. */
export const StoreCodes = {
  UNAVAILABLE: 'UNAVAILABLE',
  FENCED: 'FENCED',
  SEQ_CONFLICT: 'SEQ_CONFLICT',
} as const;
