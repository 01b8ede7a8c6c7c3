import { ConfigError, IdTooLongError, KeyTooLongError, TsInFutureError } from '../errors.js';
import { parseDuration } from '../time/duration.js';
import type { Event } from './types.js';

/**
 * Bounds on a single event, so that no one event can hurt a key or the store: a key the store
 * cannot index, an id that bloats the key's record, a `ts` so far ahead that every later event of
 * the key is refused as going back in time.
 */
export interface EventLimits {
  /** Longest key, in UTF-8 bytes (`events.maxKeyBytes`); longer is `EVENT_KEY_TOO_LONG`. */
  readonly maxKeyBytes: number;
  /** Longest id, in UTF-8 bytes (`events.maxIdBytes`); longer is `EVENT_ID_TOO_LONG`. */
  readonly maxIdBytes: number;
  /**
   * How far, in ms, an event's `ts` may lie ahead of the wall clock (`events.maxTsAhead`); further
   * is `EVENT_TS_IN_FUTURE`. `undefined`: no bound (replay's default, for files of any era).
   */
  readonly maxTsAheadMs?: number | undefined;
}

/** Default `events.maxKeyBytes`: room for any natural key, a quarter of LMDB's index limit. */
export const DEFAULT_MAX_KEY_BYTES = 512;
/** Default `events.maxIdBytes`: a UUID (36) or a ULID with a prefix fits many times over. */
export const DEFAULT_MAX_ID_BYTES = 128;
/** Default `events.maxTsAhead` of serve and kafka: a day, far beyond clock skew, far below a unit mistake. */
export const DEFAULT_MAX_TS_AHEAD_MS = 86_400_000;
/**
 * The largest `maxKeyBytes` any store takes: LMDB indexes keys of at most 1978 bytes of its key
 * encoding, the UTF-8 bytes plus at most one escape byte.
 */
export const KEY_BYTES_CEILING = 1977;

export const DEFAULT_EVENT_LIMITS: EventLimits = {
  maxKeyBytes: DEFAULT_MAX_KEY_BYTES,
  maxIdBytes: DEFAULT_MAX_ID_BYTES,
};

/** The decoder's limits when none are given: only what no store could hold is refused. */
export const DECODE_CEILINGS: EventLimits = {
  maxKeyBytes: KEY_BYTES_CEILING,
  maxIdBytes: 64 * 1024,
};

/** A `maxTsAhead` setting in ms: a duration (`1d`, `6h`), or `off` (`undefined`: no bound). */
export function parseMaxTsAhead(text: string, what = 'maxTsAhead'): number | undefined {
  return text.trim() === 'off' ? undefined : parseDuration(text, what);
}

/** `limits` with defaults filled in, checked: a limit out of range is a `ConfigError`. */
export function eventLimits(limits: Partial<EventLimits> = {}): EventLimits {
  const out: EventLimits = {
    maxKeyBytes: limits.maxKeyBytes ?? DEFAULT_MAX_KEY_BYTES,
    maxIdBytes: limits.maxIdBytes ?? DEFAULT_MAX_ID_BYTES,
    maxTsAheadMs: limits.maxTsAheadMs,
  };
  if (!Number.isInteger(out.maxKeyBytes) || out.maxKeyBytes < 1 || out.maxKeyBytes > KEY_BYTES_CEILING) {
    throw new ConfigError(
      `events.maxKeyBytes must be an integer from 1 to ${KEY_BYTES_CEILING} (LMDB's key limit), got ${out.maxKeyBytes}`,
    );
  }
  if (
    !Number.isInteger(out.maxIdBytes) ||
    out.maxIdBytes < 1 ||
    out.maxIdBytes > DECODE_CEILINGS.maxIdBytes
  ) {
    throw new ConfigError(
      `events.maxIdBytes must be an integer from 1 to ${DECODE_CEILINGS.maxIdBytes}, got ${out.maxIdBytes}`,
    );
  }
  if (out.maxTsAheadMs !== undefined && !(out.maxTsAheadMs >= 0 && Number.isFinite(out.maxTsAheadMs))) {
    throw new ConfigError(`events.maxTsAhead must be a duration of zero or more, got ${out.maxTsAheadMs} ms`);
  }
  return out;
}

/** UTF-8 length of `s`, computed only when it might pass `limit` (at most 3 bytes per UTF-16 unit). */
export function utf8Over(s: string, limit: number): number | undefined {
  if (s.length * 3 <= limit) return undefined;
  const bytes = Buffer.byteLength(s, 'utf8');
  return bytes > limit ? bytes : undefined;
}

/** Throws the `EventError` of the first size limit `key` or `id` breaks. */
export function checkSizes(key: string, id: string | undefined, limits: EventLimits): void {
  const keyBytes = utf8Over(key, limits.maxKeyBytes);
  if (keyBytes !== undefined) throw new KeyTooLongError(keyBytes, limits.maxKeyBytes);
  if (id !== undefined) {
    const idBytes = utf8Over(id, limits.maxIdBytes);
    if (idBytes !== undefined) throw new IdTooLongError(idBytes, limits.maxIdBytes);
  }
}

/** Throws the `EventError` of the first limit `event` breaks, the wall clock reading `now` ms. */
export function checkEvent(event: Event, limits: EventLimits, now: number): void {
  checkSizes(event.key, event.id, limits);
  if (limits.maxTsAheadMs !== undefined && event.ts - now > limits.maxTsAheadMs) {
    throw new TsInFutureError(event.ts, now, limits.maxTsAheadMs);
  }
}
