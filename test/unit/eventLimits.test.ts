import { describe, expect, it } from 'vitest';
import { DEMO_MODEL } from '../../src/config/schema.js';
import { KeyedStepper, type KeyedStepperOptions } from '../../src/engine/keyedStepper.js';
import type { Outcome } from '../../src/engine/types.js';
import { EventError } from '../../src/errors.js';
import { decodeEvent, validateEvent } from '../../src/events/decode.js';
import {
  DEFAULT_EVENT_LIMITS,
  DEFAULT_MAX_TS_AHEAD_MS,
  eventLimits,
  KEY_BYTES_CEILING,
} from '../../src/events/limits.js';
import { modelFeatures } from '../../src/features/modelFeatures.js';
import { loadModel } from '../../src/formats/load.js';
import { kafkaEnvelope } from '../../src/sources/kafkaEnvelope.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import { at } from '../helpers/envelopes.js';

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(EventError);
    return (err as EventError).code;
  }
  return undefined;
}

describe('event limits at decode', () => {
  const event = (over: Record<string, unknown>) => ({ key: 'k', ts: 1, features: [1], ...over });

  it('refuses a ts outside the representable date range, and takes its edges', () => {
    for (const ts of [1e300, 8.64e15 + 1, -8.64e15 - 1, Number.MAX_VALUE]) {
      expect(codeOf(() => validateEvent(event({ ts })))).toBe('EVENT_INVALID');
    }
    expect(() => decodeEvent('{"key":"k","ts":1e300,"features":[1]}')).toThrow(/representable date range/);
    for (const ts of [8.64e15, -8.64e15, 0]) expect(validateEvent(event({ ts })).ts).toBe(ts);
  });

  it('measures the key in UTF-8 bytes against the given limit', () => {
    expect(codeOf(() => validateEvent(event({ key: 'k'.repeat(513) }), DEFAULT_EVENT_LIMITS))).toBe(
      'EVENT_KEY_TOO_LONG',
    );
    expect(validateEvent(event({ key: 'k'.repeat(512) }), DEFAULT_EVENT_LIMITS).key).toHaveLength(512);
    // 171 characters, 513 bytes.
    expect(codeOf(() => validateEvent(event({ key: '€'.repeat(171) }), DEFAULT_EVENT_LIMITS))).toBe(
      'EVENT_KEY_TOO_LONG',
    );
    expect(() => validateEvent(event({ key: '€'.repeat(171) }), DEFAULT_EVENT_LIMITS)).toThrow(
      /513 bytes long in UTF-8, more than the limit of 512/,
    );
  });

  it('without limits, refuses only keys no store can index', () => {
    expect(validateEvent(event({ key: 'k'.repeat(KEY_BYTES_CEILING) })).key).toHaveLength(KEY_BYTES_CEILING);
    expect(codeOf(() => validateEvent(event({ key: 'k'.repeat(KEY_BYTES_CEILING + 1) })))).toBe(
      'EVENT_KEY_TOO_LONG',
    );
  });

  it('bounds the id in UTF-8 bytes', () => {
    expect(codeOf(() => validateEvent(event({ id: 'i'.repeat(129) }), DEFAULT_EVENT_LIMITS))).toBe(
      'EVENT_ID_TOO_LONG',
    );
    expect(validateEvent(event({ id: 'i'.repeat(128) }), DEFAULT_EVENT_LIMITS).id).toHaveLength(128);
  });

  it('refuses limits out of range as configuration errors', () => {
    expect(() => eventLimits({ maxKeyBytes: 0 })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
    expect(() => eventLimits({ maxKeyBytes: KEY_BYTES_CEILING + 1 })).toThrow(/LMDB/);
    expect(() => eventLimits({ maxIdBytes: 1.5 })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
    expect(() => eventLimits({ maxTsAheadMs: -1 })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
    expect(eventLimits()).toEqual({ ...DEFAULT_EVENT_LIMITS, maxTsAheadMs: undefined });
  });
});

describe('event time ahead of the clock', () => {
  const NOW = Date.parse('2026-12-06T09:00:00Z');

  async function demo(options: Partial<KeyedStepperOptions> = {}) {
    const model = await loadModel(DEMO_MODEL);
    const features = modelFeatures(model)!;
    return new KeyedStepper({
      model,
      store: new MemoryStateStore(),
      encodeValues: features.encodeValues,
      now: () => NOW,
      ...options,
    });
  }
  const visit = (line: number, ts: number) =>
    at(line, { key: 'c', ts, values: { spend: 10 + line, channel: 'app' } });
  const kinds = (o: readonly Outcome[]) => o.map((x) => (x.kind === 'rejected' ? x.code : x.kind));

  it('without a bound, one far-future event locks its key: every later ordinary event is refused', async () => {
    // Replay's default: what the bound is for.
    const stepper = await demo();
    const outcomes = await stepper.process([visit(1, NOW), visit(2, 8.64e15), visit(3, NOW + 1000)]);
    expect(kinds(outcomes)).toEqual(['prediction', 'prediction', 'EVENT_INVALID']);
  });

  it('with a bound, refuses the far-future event alone (EVENT_TS_IN_FUTURE) and the key goes on', async () => {
    const stepper = await demo({ limits: { maxTsAheadMs: DEFAULT_MAX_TS_AHEAD_MS } });
    const outcomes = await stepper.process([
      visit(1, NOW),
      visit(2, 8.64e15),
      visit(3, NOW + DEFAULT_MAX_TS_AHEAD_MS + 1),
      visit(4, NOW + 1000),
      // Up to the bound is fine: clocks differ.
      visit(5, NOW + DEFAULT_MAX_TS_AHEAD_MS),
    ]);
    expect(kinds(outcomes)).toEqual([
      'prediction',
      'EVENT_TS_IN_FUTURE',
      'EVENT_TS_IN_FUTURE',
      'prediction',
      'prediction',
    ]);
    const rejected = outcomes[1] as Extract<Outcome, { kind: 'rejected' }>;
    expect(rejected.reason).toMatch(/ahead of this server's clock .*events\.maxTsAhead/);
    expect(
      outcomes.filter((o) => o.kind === 'prediction').map((o) => o.kind === 'prediction' && o.prediction.seq),
    ).toEqual([1, 2, 3]);
  });
});

describe('event limits at the Kafka edge (kafkaEnvelope)', () => {
  const limits = eventLimits({ maxKeyBytes: 8, maxIdBytes: 4, maxTsAheadMs: 1000 });
  const NOW = 1_700_000_000_000;
  const envelope = (key: string | null, value: Record<string, unknown>) =>
    kafkaEnvelope(
      'in',
      0,
      { key: key === null ? null : Buffer.from(key), value: Buffer.from(JSON.stringify(value)), offset: '5' },
      32,
      limits,
      NOW,
    );
  const codeOfEnvelope = (out: ReturnType<typeof kafkaEnvelope>) => ('kind' in out ? out.code : 'event');

  it('rejects an event beyond the engine’s limits with the engine’s codes, keyed or not', () => {
    const ok = { key: 'short', ts: NOW, features: [1] };
    for (const messageKey of ['short', null]) {
      expect(codeOfEnvelope(envelope(messageKey, ok))).toBe('event');
      expect(codeOfEnvelope(envelope(messageKey, { ...ok, id: 'abcde' }))).toBe('EVENT_ID_TOO_LONG');
      expect(codeOfEnvelope(envelope(messageKey, { ...ok, ts: NOW + 1001 }))).toBe('EVENT_TS_IN_FUTURE');
      expect(codeOfEnvelope(envelope(messageKey, { ...ok, ts: NOW + 1000 }))).toBe('event');
    }
    const long = 'k'.repeat(9);
    expect(codeOfEnvelope(envelope(null, { ...ok, key: long }))).toBe('EVENT_KEY_TOO_LONG');
    expect(codeOfEnvelope(envelope(long, { ...ok, key: long }))).toBe('EVENT_KEY_TOO_LONG');
    // The message key filled in for an event without one is bounded alike.
    const { key: _, ...keyless } = ok;
    expect(codeOfEnvelope(envelope(long, keyless))).toBe('EVENT_KEY_TOO_LONG');
    const rejected = envelope(null, { ...ok, ts: NOW + 5000 });
    expect(rejected).toMatchObject({
      kind: 'rejected',
      position: { kind: 'offset', topic: 'in', partition: 0, offset: '5' },
    });
  });
});
