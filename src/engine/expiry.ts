import { ConfigError } from '../errors.js';
import type { StateRecord } from '../state/types.js';

/** When idle keys' state expires. */
export interface ExpiryOptions {
  /** Idle time after which a key's state expires, ms. */
  readonly ttlMs: number;
  /**
   * `'event'`: a key expires when its last event time is more than `ttlMs` behind the newest
   * event time seen (for a key that gets an event, behind that event's time).
   * `'processing'`: when its state was last written more than `ttlMs` ago by the wall clock.
   */
  readonly clock: 'event' | 'processing';
  /** Stored keys the sweep examines per batch at most, bounding its work. Default 1000. */
  readonly maxPerSweep?: number;
  /**
   * Stored keys the sweep examines per event of the batch (up to `maxPerSweep`). Default 4. The
   * sweep's work follows the traffic, so a stream of small batches is not charged a whole
   * `maxPerSweep` read each; and at more than one key per event it outpaces the keys events can
   * create, so the store never holds more than the live keys plus those awaiting the next pass.
   */
  readonly sweepPerEvent?: number;
}

/** Decides whether a key's stored state has expired; reasons are what the `expired` outcome says. */
export class ExpiryPolicy {
  readonly ttlMs: number;
  readonly clock: 'event' | 'processing';
  readonly maxPerSweep: number;
  readonly sweepPerEvent: number;
  /** Newest event time seen; nothing expires by event time before the first event. */
  private watermark = Number.NEGATIVE_INFINITY;

  constructor(
    options: ExpiryOptions,
    private readonly now: () => number,
  ) {
    if (!(options.ttlMs > 0)) throw new ConfigError(`ttl must be more than zero, got ${options.ttlMs}`);
    const maxPerSweep = options.maxPerSweep ?? 1000;
    if (!Number.isInteger(maxPerSweep) || maxPerSweep < 0) {
      throw new ConfigError(`ttl maxPerSweep must be a non-negative integer, got ${maxPerSweep}`);
    }
    const sweepPerEvent = options.sweepPerEvent ?? 4;
    if (!(Number.isInteger(sweepPerEvent) && sweepPerEvent >= 1)) {
      throw new ConfigError(`ttl sweepPerEvent must be a positive integer, got ${sweepPerEvent}`);
    }
    this.ttlMs = options.ttlMs;
    this.clock = options.clock;
    this.maxPerSweep = maxPerSweep;
    this.sweepPerEvent = sweepPerEvent;
  }

  /** How many stored keys the sweep examines after a batch of `events` events. */
  sweepSize(events: number): number {
    return Math.min(this.maxPerSweep, this.sweepPerEvent * events);
  }

  observe(eventTs: number): void {
    if (eventTs > this.watermark) this.watermark = eventTs;
  }

  /**
   * Why `record` has expired by the time the key's next event (at `eventTs`) arrives, or
   * `undefined`. In event time the key's own next event decides, so the outcome does not depend
   * on how events were batched.
   */
  expiredOnArrival(record: StateRecord, eventTs: number): string | undefined {
    return this.clock === 'event' ? this.byEventTime(record, eventTs) : this.byProcessingTime(record);
  }

  /** Why an idle key's `record` has expired, or `undefined`. */
  expiredIdle(record: StateRecord): string | undefined {
    return this.clock === 'event' ? this.byEventTime(record, this.watermark) : this.byProcessingTime(record);
  }

  private byEventTime(record: StateRecord, reference: number): string | undefined {
    const idle = reference - record.ts;
    if (!(idle > this.ttlMs)) return undefined;
    return `idle for ${formatMs(idle)} of event time (last event at ${iso(record.ts)}), more than the TTL of ${formatMs(this.ttlMs)}`;
  }

  private byProcessingTime(record: StateRecord): string | undefined {
    // A v1 record never says when it was written; it gets a time on its next write.
    if (record.updatedAt === undefined) return undefined;
    const idle = this.now() - record.updatedAt;
    if (!(idle > this.ttlMs)) return undefined;
    return `not updated for ${formatMs(idle)} of processing time (last at ${iso(record.updatedAt)}), more than the TTL of ${formatMs(this.ttlMs)}`;
  }
}

function iso(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

/** `3d 4h`, `90s`, `250ms`: the two largest units, for people reading outcomes. */
export function formatMs(ms: number): string {
  const units: Array<[string, number]> = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  const parts: string[] = [];
  let rest = Math.round(ms);
  for (const [name, size] of units) {
    if (rest >= size && parts.length < 2) {
      parts.push(`${Math.floor(rest / size)}${name}`);
      rest %= size;
    } else if (parts.length > 0) {
      break;
    }
  }
  return parts.length > 0 ? parts.join(' ') : `${rest}ms`;
}
