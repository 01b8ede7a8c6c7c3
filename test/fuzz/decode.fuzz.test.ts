// Property tests over event decoding and feature encoding: whatever JSON arrives, the decoder
// either yields an event within its contract or throws a typed EventError, and an accepted
// event encodes to finite vectors of the model's input sizes or is refused with an EventError.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEMO_MODEL } from '../../src/config/schema.js';
import { EventError } from '../../src/errors.js';
import { decodeEvent, MAX_TS_MS, validateEvent } from '../../src/events/decode.js';
import { DEFAULT_EVENT_LIMITS } from '../../src/events/limits.js';
import type { Event } from '../../src/events/types.js';
import { encodeInputs } from '../../src/features/encodeInputs.js';
import { modelFeatures } from '../../src/features/modelFeatures.js';
import { loadModel } from '../../src/formats/load.js';
import { fuzzParams } from '../helpers/fuzz.js';

/** Runs `f`; an error other than an EventError fails the property. */
function typedOrValue<T>(f: () => T): T | EventError {
  try {
    return f();
  } catch (err) {
    if (err instanceof EventError) return err;
    throw err;
  }
}

/** Values a producer might send for any field: every JSON type, awkward numbers, long strings. */
const anyValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(1e300, -1e300, 8.64e15, 8.64e15 + 1, -0, Number.MAX_SAFE_INTEGER, 1.7e12, ''),
  fc.string({ unit: 'binary', maxLength: 700 }),
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
);

/** An object shaped like an event, each field arbitrary or absent. */
const eventish = fc.record(
  {
    key: fc.oneof(fc.string({ unit: 'binary', minLength: 0, maxLength: 600 }), anyValue),
    ts: fc.oneof(fc.double(), fc.integer(), anyValue),
    features: fc.oneof(fc.array(fc.oneof(fc.double(), anyValue), { maxLength: 6 }), anyValue),
    values: fc.oneof(
      fc.record(
        {
          spend: fc.oneof(fc.double(), anyValue),
          channel: fc.oneof(fc.constantFrom('store', 'app', 'web'), anyValue),
        },
        { requiredKeys: [] },
      ),
      fc.dictionary(fc.string(), anyValue, { maxKeys: 4 }),
      anyValue,
    ),
    inputs: fc.oneof(
      fc.dictionary(fc.string(), fc.array(fc.double(), { maxLength: 4 }), { maxKeys: 3 }),
      anyValue,
    ),
    id: fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), anyValue),
    reset: fc.oneof(fc.boolean(), anyValue),
  },
  { requiredKeys: [] },
);

/** A demo visit with arbitrary values: most reach the encoder. */
const visitish = fc.record({
  key: fc.constantFrom('c-1', 'c-2'),
  ts: fc.oneof(
    fc.integer({ min: -8.64e15, max: 8.64e15 }),
    fc.double({ min: -8.64e15, max: 8.64e15, noNaN: true }),
  ),
  values: fc.record(
    {
      spend: fc.oneof(fc.double(), fc.integer(), anyValue),
      channel: fc.oneof(fc.constantFrom('store', 'app', 'web'), anyValue),
      extra: anyValue,
    },
    { requiredKeys: [] },
  ),
});

function expectWithinContract(event: Event): void {
  expect(typeof event.key).toBe('string');
  expect(event.key.length).toBeGreaterThan(0);
  expect(Buffer.byteLength(event.key)).toBeLessThanOrEqual(DEFAULT_EVENT_LIMITS.maxKeyBytes);
  expect(Number.isFinite(event.ts) && Math.abs(event.ts) <= MAX_TS_MS).toBe(true);
  const given = [event.features, event.values, event.inputs].filter((f) => f !== undefined);
  expect(given).toHaveLength(1);
  for (const x of event.features ?? []) expect(Number.isFinite(x)).toBe(true);
  for (const v of Object.values(event.inputs ?? {})) for (const x of v) expect(Number.isFinite(x)).toBe(true);
  if (event.id !== undefined)
    expect(Buffer.byteLength(event.id)).toBeLessThanOrEqual(DEFAULT_EVENT_LIMITS.maxIdBytes);
}

describe('fuzz: event decoding', () => {
  it('validateEvent on arbitrary JSON values: an event within the contract, or an EventError', () => {
    let accepted = 0;
    fc.assert(
      fc.property(fc.oneof(anyValue, eventish), (value) => {
        const got = typedOrValue(() => validateEvent(value, DEFAULT_EVENT_LIMITS));
        if (got instanceof EventError) return;
        accepted++;
        expectWithinContract(got);
      }),
      fuzzParams(3000),
    );
    // The generator reaches both sides.
    expect(accepted).toBeGreaterThan(0);
  });

  it('decodeEvent on arbitrary text, JSON or not: an event or an EventError', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 300 }),
          fc.json({ maxDepth: 4 }),
          eventish.map((e) => JSON.stringify(e)),
        ),
        (text) => {
          const got = typedOrValue(() => decodeEvent(text, DEFAULT_EVENT_LIMITS));
          if (!(got instanceof EventError)) expectWithinContract(got);
        },
      ),
      fuzzParams(3000),
    );
  });
});

describe('fuzz: feature encoding against the demo spec', async () => {
  const model = await loadModel(DEMO_MODEL);
  const features = modelFeatures(model)!;
  const sizes = model.inputs.map((i) => i.size);

  it('an accepted event encodes to finite vectors of the model’s input sizes, or is refused with an EventError', () => {
    let encodedCount = 0;
    fc.assert(
      fc.property(
        fc.oneof(eventish, visitish),
        fc.option(fc.oneof(fc.double(), fc.integer()), { nil: undefined }),
        (value, previous) => {
          const event = typedOrValue(() => validateEvent(value, DEFAULT_EVENT_LIMITS));
          if (event instanceof EventError) return;
          const previousTs = previous === undefined || !Number.isFinite(previous) ? undefined : previous;
          const encoded = typedOrValue(() => encodeInputs(model, event, features.encodeValues, previousTs));
          if (encoded instanceof EventError) return;
          encodedCount++;
          expect(encoded.map((x) => x.length)).toEqual(sizes);
          for (const x of encoded) for (const v of Array.from(x)) expect(Number.isFinite(v)).toBe(true);
        },
      ),
      fuzzParams(3000),
    );
    // The generators reach the encoder's success path, not only its refusals.
    expect(encodedCount).toBeGreaterThan(30);
  });
});
