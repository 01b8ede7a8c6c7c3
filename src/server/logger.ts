import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

/** The service's structured logger: JSON lines on stdout (or `destination`), pino's format. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { name: 'cellstream', level };
  return destination ? pino(options, destination) : pino(options);
}
