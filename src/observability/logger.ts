import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from '../config.js';

export type { Logger } from 'pino';

/**
 * Log fields that may carry credentials (Prometheus auth from spec.prometheus.authSecretRef: bearer
 * tokens, basic-auth passwords, TLS keys; HTTP headers and axios error configs holding them).
 */
export const REDACT_PATHS = [
  'authorization',
  'Authorization',
  'token',
  'password',
  'bearerToken',
  'auth',
  'secret',
  '*.authorization',
  '*.Authorization',
  '*.token',
  '*.password',
  '*.bearerToken',
  '*.auth',
  '*.secret',
  '*.basic',
  '*.tls',
  '*["tls.key"]',
  '*["tls.crt"]',
  '*["ca.crt"]',
  'headers.authorization',
  'headers.Authorization',
  '*.headers.authorization',
  '*.headers.Authorization',
  '*.config.headers.authorization',
  '*.config.headers.Authorization',
  '*.config.auth',
  '*.config.httpsAgent',
  '*.response.config.headers.Authorization',
  '*.response.config.headers.authorization',
  '*.request._header',
];

/**
 * JSON logs on stdout. Fields that may carry credentials are redacted, whatever logs them.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { app: 'poolpilot' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // `destination` lets tests capture the real logger's output (stdout otherwise).
  return destination === undefined ? pino(options) : pino(options, destination);
}
