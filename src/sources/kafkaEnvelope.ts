import type { Envelope, Rejected } from '../engine/types.js';
import { EventError, InvalidEventError, KeyMismatchError } from '../errors.js';
import { admitEvent, decodeEvent } from '../events/decode.js';
import { checkJsonDepth, DEFAULT_MAX_JSON_DEPTH } from '../events/jsonDepth.js';
import { DECODE_CEILINGS, type EventLimits } from '../events/limits.js';
import type { Position } from '../events/types.js';

/** The parts of a Kafka message an envelope is made from. */
export interface KafkaMessageLike {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly offset: string;
}

/**
 * One Kafka message as an envelope for the engine, or its rejection. The message key is the entity
 * key: an event without a `key` field takes it, an event whose `key` differs is rejected
 * (`EVENT_KEY_MISMATCH`); a message without a key uses its event's `key`. A value nested deeper
 * than `maxJsonDepth` is rejected (`EVENT_TOO_DEEP`) before it is parsed, so a poison record is
 * dead-lettered like any other. An event beyond one of the engine's `limits` (the wall clock
 * reading `now`) is rejected here with the engine's code (`admitEvent`); without `limits` only
 * what no store can hold is, and the engine applies its own.
 */
export function kafkaEnvelope(
  topic: string,
  partition: number,
  message: KafkaMessageLike,
  maxJsonDepth: number = DEFAULT_MAX_JSON_DEPTH,
  limits: EventLimits = DECODE_CEILINGS,
  now: number = Date.now(),
): Envelope | Rejected {
  const position: Position = { kind: 'offset', topic, partition, offset: message.offset };
  const raw = message.value?.toString('utf8') ?? '';
  const messageKey = message.key?.toString('utf8');
  try {
    if (message.value === null) throw new InvalidEventError('the message has no value (a tombstone)');
    checkJsonDepth(raw, maxJsonDepth);
    // Parsed here rather than by the engine, to compare or fill in the key before validation.
    const parsed = parseJson(raw);
    if (messageKey === undefined || messageKey === '')
      return { event: admitEvent(parsed, limits, now), raw, position };
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) {
      const eventKey = (parsed as Record<string, unknown>)['key'];
      if (eventKey === undefined || eventKey === null) {
        return { event: admitEvent({ ...parsed, key: messageKey }, limits, now), raw, position };
      }
      if (eventKey !== messageKey && typeof eventKey === 'string') {
        throw new KeyMismatchError(messageKey, eventKey);
      }
    }
    return { event: admitEvent(parsed, limits, now), raw, position };
  } catch (err) {
    if (!(err instanceof EventError)) throw err;
    return { kind: 'rejected', reason: err.message, code: err.code, raw, position };
  }
}

function parseJson(raw: string): unknown {
  // decodeEvent's error for malformed text, so both paths reject alike.
  try {
    return JSON.parse(raw);
  } catch {
    return decodeEvent(raw);
  }
}
