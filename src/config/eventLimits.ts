import { type EventLimits, parseMaxTsAhead } from '../events/limits.js';
import type { Config } from './schema.js';

/** The engine's event limits from the `events` section of a validated configuration. */
export function eventLimitsOf(events: Config['events']): EventLimits {
  return {
    maxKeyBytes: events.maxKeyBytes,
    maxIdBytes: events.maxIdBytes,
    maxTsAheadMs: parseMaxTsAhead(events.maxTsAhead, 'events.maxTsAhead'),
  };
}
