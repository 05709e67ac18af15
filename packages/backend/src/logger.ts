// The slice of pino's Logger the backend uses, so callers can pass pino, a child logger or a test double.
import pino from 'pino';

type LogFn = (obj: object, msg?: string) => void;

export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

export function defaultLogger(): Logger {
  return pino({ name: 'otalink-backend', level: process.env.OTALINK_LOG_LEVEL ?? 'info' });
}

export const silentLogger: Logger = pino({ level: 'silent' });
