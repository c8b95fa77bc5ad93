import { pino, type Logger } from 'pino';
import type { LogLevel } from '../config.js';

export type { Logger } from 'pino';

/**
 * JSON logs on stdout. Fields that may carry credentials are redacted, whatever logs them.
 */
export function createLogger(level: LogLevel): Logger {
  return pino({
    level,
    base: { app: 'poolpilot' },
    redact: { paths: ['*.authorization', '*.Authorization', '*.token', '*.password', '*.bearerToken', 'headers.authorization'], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
