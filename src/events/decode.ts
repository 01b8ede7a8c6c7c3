import { IdTooLongError, InvalidEventError, KeyTooLongError, MalformedJsonError } from '../errors.js';
import { checkEvent, DECODE_CEILINGS, type EventLimits, utf8Over } from './limits.js';
import type { Event } from './types.js';

/** The largest `ts` magnitude a JavaScript Date holds (±100,000,000 days around the epoch), in ms. */
export const MAX_TS_MS = 8.64e15;

/**
 * Parses one event from its wire text (an NDJSON line, a WebSocket message, a Kafka value).
 * Throws `MalformedJsonError` when the text is not JSON and `InvalidEventError`, naming the
 * field, when it is JSON but not an event. Unknown fields are ignored; an optional field that is
 * `null` counts as absent (many producers write null rather than leaving a field out).
 * `limits` bounds the key's and id's UTF-8 length (`EVENT_KEY_TOO_LONG`, `EVENT_ID_TOO_LONG`);
 * without it only what no store can hold is refused, and the engine applies the configured limits.
 */
export function decodeEvent(text: string, limits: EventLimits = DECODE_CEILINGS): Event {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new MalformedJsonError(err instanceof Error ? err.message : String(err));
  }
  return validateEvent(value, limits);
}

/**
 * What an edge (an `/ingest` frame, a Kafka message) checks of an already-parsed value before it
 * hands the event on: the event contract and every limit of the engine (`events.maxKeyBytes`,
 * `maxIdBytes`, `maxTsAhead`, the wall clock reading `now`), with the engine's codes, so that a
 * bad event is answered where it came in. The engine checks the same again, as a backstop for
 * events that reach it by other ways.
 */
export function admitEvent(value: unknown, limits: EventLimits, now: number): Event {
  const event = validateEvent(value, limits);
  checkEvent(event, limits, now);
  return event;
}

/** Checks an already-parsed value against the event contract; see `decodeEvent`. */
export function validateEvent(value: unknown, limits: EventLimits = DECODE_CEILINGS): Event {
  if (!isPlainObject(value)) {
    throw new InvalidEventError(`expected a JSON object, got ${describe(value)}`);
  }
  const key = value['key'];
  if (key === undefined || key === null) throw new InvalidEventError('key is missing');
  if (typeof key !== 'string' || key.length === 0) {
    throw new InvalidEventError(`key must be a non-empty string, got ${describe(key)}`);
  }
  const keyBytes = utf8Over(key, limits.maxKeyBytes);
  if (keyBytes !== undefined) throw new KeyTooLongError(keyBytes, limits.maxKeyBytes);
  const ts = decodeTs(value['ts']);

  // Three tests rather than a filtered list: this runs for every event.
  const hasFeatures = present(value['features']);
  const hasValues = present(value['values']);
  const hasInputs = present(value['inputs']);
  if (!hasFeatures && !hasValues && !hasInputs) {
    throw new InvalidEventError('an event needs one of features, values or inputs');
  }
  if (+hasFeatures + +hasValues + +hasInputs > 1) {
    const given = (['features', 'values', 'inputs'] as const).filter((f) => present(value[f]));
    throw new InvalidEventError(`give only one of features, values or inputs, not ${given.join(' and ')}`);
  }
  const event: {
    key: string;
    ts: number;
    features?: number[];
    values?: Record<string, unknown>;
    inputs?: Record<string, number[]>;
    id?: string;
    reset?: boolean;
  } = { key, ts };

  switch (hasFeatures ? 'features' : hasValues ? 'values' : 'inputs') {
    case 'features':
      event.features = numberArray(value['features'], 'features');
      break;
    case 'values': {
      const values = value['values'];
      if (!isPlainObject(values)) {
        throw new InvalidEventError(`values must be an object, got ${describe(values)}`);
      }
      event.values = values;
      break;
    }
    case 'inputs': {
      const inputs = value['inputs'];
      if (!isPlainObject(inputs)) {
        throw new InvalidEventError(`inputs must be an object of arrays, got ${describe(inputs)}`);
      }
      event.inputs = Object.fromEntries(
        Object.entries(inputs).map(([name, v]) => [name, numberArray(v, `inputs.${name}`)]),
      );
      break;
    }
  }

  const id = value['id'];
  if (present(id)) {
    if (typeof id !== 'string' || id.length === 0) {
      throw new InvalidEventError(`id must be a non-empty string, got ${describe(id)}`);
    }
    const idBytes = utf8Over(id, limits.maxIdBytes);
    if (idBytes !== undefined) throw new IdTooLongError(idBytes, limits.maxIdBytes);
    event.id = id;
  }
  const reset = value['reset'];
  if (present(reset)) {
    if (typeof reset !== 'boolean')
      throw new InvalidEventError(`reset must be true or false, got ${describe(reset)}`);
    event.reset = reset;
  }
  return event;
}

// Date-times must carry Z or an offset: a local-time reading would make replays depend on the
// machine's time zone. A bare date is midnight UTC, as ECMAScript reads it.
const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|[+-]\d{2}:?\d{2}))?$/;

function decodeTs(ts: unknown): number {
  if (ts === undefined || ts === null) throw new InvalidEventError('ts is missing');
  if (typeof ts === 'number') {
    if (!Number.isFinite(ts)) throw new InvalidEventError(`ts must be a finite number, got ${ts}`);
    // Beyond a Date's range no time is meant, and such a ts would make every later event of the
    // key look earlier than it.
    if (Math.abs(ts) > MAX_TS_MS) {
      throw new InvalidEventError(
        `ts ${ts} is outside the representable date range (±${MAX_TS_MS} ms around 1970); send ms since the epoch`,
      );
    }
    return ts;
  }
  if (typeof ts !== 'string') {
    throw new InvalidEventError(`ts must be ms since the epoch or an ISO-8601 string, got ${describe(ts)}`);
  }
  const ms = parseIso8601(ts);
  if (ms === undefined) {
    throw new InvalidEventError(
      `ts ${JSON.stringify(ts)} is not an ISO-8601 date-time with a time zone (e.g. 2024-11-27T10:00:00Z)`,
    );
  }
  return ms;
}

/** ms since the epoch, or undefined when `s` is not a valid ISO-8601 date or zoned date-time. */
function parseIso8601(s: string): number | undefined {
  const m = ISO_8601.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h = '0', mi = '0', sec = '0', frac = '', zone] = m;
  if (m[4] !== undefined && zone === undefined) return undefined;
  const fields = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(sec)] as const;
  // Sub-millisecond digits are dropped: event time is kept in whole ms.
  const ms = Number(frac.padEnd(3, '0').slice(0, 3));
  const local = new Date(Date.UTC(...fields, ms));
  // Date.UTC rolls 2024-02-30 over to March; a field that changed means the date does not exist.
  if (
    local.getUTCFullYear() !== fields[0] ||
    local.getUTCMonth() !== fields[1] ||
    local.getUTCDate() !== fields[2] ||
    local.getUTCHours() !== fields[3] ||
    local.getUTCMinutes() !== fields[4] ||
    local.getUTCSeconds() !== fields[5]
  ) {
    return undefined;
  }
  return local.getTime() - zoneOffsetMs(zone);
}

function zoneOffsetMs(zone: string | undefined): number {
  if (zone === undefined || zone === 'Z') return 0;
  const sign = zone[0] === '-' ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  return sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
}

function numberArray(v: unknown, field: string): number[] {
  if (!Array.isArray(v))
    throw new InvalidEventError(`${field} must be an array of numbers, got ${describe(v)}`);
  v.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isFinite(x)) {
      throw new InvalidEventError(`${field}[${i}] must be a finite number, got ${describe(x)}`);
    }
  });
  return v as number[];
}

function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A short, safe rendering of an offending value for error messages. */
function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return `${typeof v} ${String(v)}`;
}
