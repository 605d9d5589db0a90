import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON logs. Message text, passwords and tokens never go into a log line: callers log ids,
 * sizes and codes only.
 */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino({
    name: options.name ?? 'parley',
    level: options.level ?? process.env.PARLEY_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
    redact: { paths: ['token', 'password', 'text', '*.token', '*.password', '*.text'], censor: '[redacted]' },
  });
}

/** A logger that writes nothing, for tests and tools that own their output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
