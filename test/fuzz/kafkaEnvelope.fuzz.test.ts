// Property-based test of the Kafka envelope: whatever a record holds, decoding it never throws;
// it yields either an event (keyed as the record says) or a rejection with a stable code and the
// value as received, so the record is dead-lettered and the consumer goes on.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../src/errors.js';
import { validateEvent } from '../../src/events/decode.js';
import { DEFAULT_MAX_JSON_DEPTH, jsonDepth } from '../../src/events/jsonDepth.js';
import { kafkaEnvelope } from '../../src/sources/kafkaEnvelope.js';
import { fuzzParams } from '../helpers/fuzz.js';

const EVENT_CODES: ErrorCode[] = [
  'EVENT_MALFORMED_JSON',
  'EVENT_TOO_DEEP',
  'EVENT_INVALID',
  'EVENT_KEY_MISMATCH',
];

const key = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 });
const event = fc.record(
  {
    key,
    ts: fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 25 })),
    features: fc.array(fc.double(), { maxLength: 4 }),
    values: fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 })),
    id: fc.jsonValue({ maxDepth: 1 }),
  },
  { requiredKeys: [] },
);
const nested = fc.tuple(fc.integer({ min: 1, max: 5000 }), fc.boolean()).map(([d, wrapped]) => {
  const deep = `${'['.repeat(d)}${']'.repeat(d)}`;
  return wrapped ? `{"key":"k","ts":1,"features":[1],"x":${deep}}` : deep;
});
const value = fc.oneof(
  event.map((e) => JSON.stringify(e)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ unit: 'binary', maxLength: 100 }),
  nested,
);
const record = fc.record({
  key: fc.option(fc.oneof(key, fc.constant('')), { nil: null }),
  value: fc.option(value, { nil: null }),
});

describe('fuzz: Kafka envelope', () => {
  it('never throws: an event keyed by the record, or a rejection with an event code and the raw value', () => {
    fc.assert(
      fc.property(record, fc.nat(1_000_000), (r, offset) => {
        const message = {
          key: r.key === null ? null : Buffer.from(r.key),
          value: r.value === null ? null : Buffer.from(r.value),
          offset: String(offset),
        };
        const out = kafkaEnvelope('events', 3, message);
        const raw = message.value?.toString('utf8') ?? '';
        expect(out.position).toEqual({
          kind: 'offset',
          topic: 'events',
          partition: 3,
          offset: String(offset),
        });
        if ('kind' in out) {
          expect(EVENT_CODES).toContain(out.code);
          expect(out.raw).toBe(raw);
          if (jsonDepth(raw, DEFAULT_MAX_JSON_DEPTH) > DEFAULT_MAX_JSON_DEPTH)
            expect(out.code).toBe('EVENT_TOO_DEEP');
          return;
        }
        expect(jsonDepth(raw)).toBeLessThanOrEqual(DEFAULT_MAX_JSON_DEPTH);
        expect(() => validateEvent(out.event)).not.toThrow();
        const recordKey = message.key?.toString('utf8');
        if (recordKey) expect(out.event?.key).toBe(recordKey);
      }),
      fuzzParams(2000),
    );
  });
});
