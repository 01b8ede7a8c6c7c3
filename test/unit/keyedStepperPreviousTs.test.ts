import { describe, expect, it } from 'vitest';
import { KeyedStepper, type KeyedStepperOptions } from '../../src/engine/keyedStepper.js';
import type { Outcome } from '../../src/engine/types.js';
import { InvalidEventError } from '../../src/errors.js';
import type { EncodeContext, ValuesEncoder } from '../../src/features/encodeInputs.js';
import type { Model } from '../../src/model/types.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import { at, rawAt } from '../helpers/envelopes.js';
import { tinyLstm } from '../helpers/models.js';

/** An encoder that records what it was told, and rejects values with `bad`. */
function recording() {
  const seen: Array<{ key: unknown; ts: number; previousTs: number | undefined }> = [];
  const encodeValues: ValuesEncoder = (values, ctx: EncodeContext) => {
    if (values['bad']) throw new InvalidEventError('values.bad is set');
    seen.push({ key: values['k'], ts: ctx.ts, previousTs: ctx.previousTs });
    return [Float32Array.from([ctx.ts / 1000, 0, 0])];
  };
  return { seen, encodeValues };
}

function setup(
  model: Model = tinyLstm(),
  store = new MemoryStateStore(),
  options: Partial<KeyedStepperOptions> = {},
) {
  const { seen, encodeValues } = recording();
  const stepper = new KeyedStepper({ model, store, encodeValues, onModelMismatch: 'reset', ...options });
  return { seen, stepper, store };
}

/** A `values` event for `key`; `bad` makes the recording encoder reject it. */
const ev = (line: number, key: string, ts: number, opts: { reset?: boolean; bad?: boolean } = {}) =>
  at(line, {
    key,
    ts,
    values: opts.bad ? { k: key, bad: true } : { k: key },
    ...(opts.reset ? { reset: true } : {}),
  });

const kinds = (outcomes: Outcome[]) =>
  outcomes.map((o) => (o.kind === 'prediction' && o.redelivered ? 'repeated' : o.kind));

describe('KeyedStepper gives the values encoder the key’s previous event time', () => {
  it('within one batch: none for a key’s first event, then that of the same key’s last event', async () => {
    const { seen, stepper } = setup();
    await stepper.process([
      ev(1, 'a', 100),
      ev(2, 'b', 150),
      ev(3, 'a', 200),
      ev(4, 'a', 260),
      ev(5, 'b', 400),
    ]);
    expect(seen).toEqual([
      { key: 'a', ts: 100, previousTs: undefined },
      { key: 'a', ts: 200, previousTs: 100 },
      { key: 'a', ts: 260, previousTs: 200 },
      { key: 'b', ts: 150, previousTs: undefined },
      { key: 'b', ts: 400, previousTs: 150 },
    ]);
  });

  it('across batches, from the stored record', async () => {
    const { seen, stepper, store } = setup();
    await stepper.process([ev(1, 'a', 100), ev(2, 'a', 130)]);
    expect((await store.getMany(['a']))[0]?.ts).toBe(130);
    await stepper.process([ev(3, 'b', 10), ev(4, 'a', 500)]);
    expect(seen.at(-1)).toEqual({ key: 'a', ts: 500, previousTs: 130 });
    expect(seen.at(-2)).toEqual({ key: 'b', ts: 10, previousTs: undefined });
  });

  it('none on a reset event, in the batch or across batches, then the reset event’s own', async () => {
    const { seen, stepper } = setup();
    await stepper.process([ev(1, 'a', 100), ev(2, 'a', 200, { reset: true }), ev(3, 'a', 300)]);
    await stepper.process([ev(4, 'a', 400, { reset: true }), ev(5, 'a', 450)]);
    expect(seen.map((s) => s.previousTs)).toEqual([undefined, undefined, 200, undefined, 400]);
  });

  it('skips events that were not applied: rejected ones and duplicates', async () => {
    const { seen, stepper } = setup();
    const outcomes = await stepper.process([
      ev(1, 'a', 100),
      ev(2, 'a', 200, { bad: true }),
      rawAt(3, '{"key": "a", "ts": 250, "values": {"k": "a"}, "reset": "yes"}'),
      ev(4, 'a', 300),
    ]);
    expect(kinds(outcomes)).toEqual(['prediction', 'rejected', 'rejected', 'prediction']);
    const again = await stepper.process([ev(4, 'a', 300), ev(5, 'a', 340)]);
    expect(kinds(again)).toEqual(['repeated', 'prediction']);
    expect(seen.map((s) => [s.ts, s.previousTs])).toEqual([
      [100, undefined],
      [300, 100],
      [340, 300],
    ]);
  });

  it('keeps a rejected event’s raw text, and leaves the key untouched', async () => {
    const { stepper, store } = setup();
    const raw = '{"key": "a", "ts": 5, "values": {"k": "a", "bad": true}}';
    const outcomes = await stepper.process([rawAt(1, raw)]);
    expect(outcomes).toEqual([
      expect.objectContaining({
        kind: 'rejected',
        code: 'EVENT_INVALID',
        raw,
        reason: 'invalid event: values.bad is set',
      }),
    ]);
    expect(await store.getMany(['a'])).toEqual([undefined]);
  });

  it('none when a stored state from another model is discarded', async () => {
    const store = new MemoryStateStore();
    await setup(tinyLstm(7), store).stepper.process([ev(1, 'a', 100)]);
    const { seen, stepper } = setup(tinyLstm(8), store);
    const outcomes = await stepper.process([ev(2, 'a', 200)]);
    expect(kinds(outcomes)).toEqual(['state-reset', 'prediction']);
    expect(seen).toEqual([{ key: 'a', ts: 200, previousTs: undefined }]);
  });

  it('none when the key’s state expired by TTL on the event’s arrival', async () => {
    const { seen, stepper } = setup(tinyLstm(), new MemoryStateStore(), {
      ttl: { ttlMs: 1000, clock: 'event' },
    });
    await stepper.process([ev(1, 'a', 100), ev(2, 'a', 900)]);
    const outcomes = await stepper.process([ev(3, 'a', 5000), ev(4, 'a', 5200)]);
    expect(kinds(outcomes)).toEqual(['expired', 'prediction', 'prediction']);
    expect(seen.map((s) => s.previousTs)).toEqual([undefined, 100, undefined, 5000]);
  });

  it('a rejected event does not expire the key’s state: the next applied event does', async () => {
    const { seen, stepper } = setup(tinyLstm(), new MemoryStateStore(), {
      ttl: { ttlMs: 1000, clock: 'event' },
    });
    await stepper.process([ev(1, 'a', 100)]);
    const outcomes = await stepper.process([ev(2, 'a', 5000, { bad: true }), ev(3, 'a', 5100)]);
    expect(kinds(outcomes)).toEqual(['rejected', 'expired', 'prediction']);
    expect(seen.map((s) => s.previousTs)).toEqual([undefined, undefined]);
  });
});

describe('KeyedStepper decodePrediction', () => {
  it('decodes every prediction, the repeated ones of redeliveries included', async () => {
    const store = new MemoryStateStore();
    const stepper = new KeyedStepper({
      model: tinyLstm(),
      store,
      decodePrediction: (p) => ({ ...p, label: p.output[0] > p.output[1] ? 'first' : 'second' }),
    });
    const event = at(1, { key: 'a', ts: 1, features: [1, 2, 3] });
    const [stepped] = await stepper.process([event]);
    const [repeated] = await stepper.process([event]);
    expect(kinds([stepped, repeated])).toEqual(['prediction', 'repeated']);
    for (const o of [stepped, repeated]) {
      if (o.kind !== 'prediction') throw new Error('expected a prediction');
      expect(o.prediction.label).toBe(o.prediction.output[0] > o.prediction.output[1] ? 'first' : 'second');
    }
  });
});
