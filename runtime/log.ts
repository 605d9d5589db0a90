import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON logs, each line with `node_id` when given (HTTP request lines also carry `request_id`). Message text, passwords and tokens never go into a log line: callers log ids,
 * sizes and codes only.
 */
export function createLogger(options: { level?: string; name?: string; nodeId?: string } = {}): Logger {
  return pino({
    name: options.name ?? 'parley',
    level: options.level ?? process.env.PARLEY_LOG_LEVEL ?? 'info',
    // node_id on every line: a cluster's logs gathered in one place still say whose they are.
    base: options.nodeId === undefined ? { pid: process.pid } : { pid: process.pid, node_id: options.nodeId },
    redact: { paths: ['token', 'password', 'text', '*.token', '*.password', '*.text'], censor: '[redacted]' },
  });
}

/** A logger that writes nothing, for tests and tools that own their output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Logs a recurring event at most once per interval, with how often it happened meanwhile: under
 * overload the same warning would otherwise be written thousands of times a second, adding to
 * the load it reports.
 */
export class ThrottledLog {
  private suppressed = 0;
  private lastMs = 0;

  constructor(
    private readonly log: Logger,
    private readonly message: string,
    private readonly intervalMs = 1_000,
  ) {}

  warn(fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.lastMs < this.intervalMs) {
      this.suppressed++;
      return;
    }
    this.log.warn({ ...fields, suppressed: this.suppressed }, this.message);
    this.suppressed = 0;
    this.lastMs = now;
  }
}
