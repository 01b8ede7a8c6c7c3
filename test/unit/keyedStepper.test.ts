import { describe, expect, it } from 'vitest';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import type { Envelope, Outcome } from '../../src/engine/types.js';
import type { Prediction } from '../../src/events/types.js';
import { createState, modelFingerprint, step } from '../../src/model/index.js';
import { referenceKernel } from '../../src/model/kernels/index.js';
import type { Model } from '../../src/model/types.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import { at, FILE, interleaved, rawAt } from '../helpers/envelopes.js';
import { tinyLstm, twoInputModel } from '../helpers/models.js';

/** What the pure core gives for each key's events applied one by one, in order (resets honoured). */
function expectedByStep(model: Model, envelopes: readonly Envelope[]): Prediction[] {
  const states = new Map<string, { state: Float32Array; seq: number }>();
  return envelopes.map((e) => {
    const event = e.event!;
    let s = states.get(event.key) ?? { state: createState(model), seq: 0 };
    if (event.reset) s = { state: createState(model), seq: 0 };
    const inputs = event.features
      ? [Float32Array.from(event.features)]
      : model.inputs.map((i) => Float32Array.from(event.inputs![i.name]));
    const r = step(model, s.state, inputs);
    states.set(event.key, { state: r.state, seq: s.seq + 1 });
    return {
      key: event.key,
      ts: event.ts,
      seq: s.seq + 1,
      model: `${model.name}@${model.version ?? modelFingerprint(model).slice(0, 8)}`,
      output: Array.from(r.output),
    };
  });
}

function predictions(outcomes: Outcome[]): Prediction[] {
  return outcomes.flatMap((o) => (o.kind === 'prediction' ? [o.prediction] : []));
}

function setup(model: Model = tinyLstm(), options: { onModelMismatch?: 'reset' | 'refuse' } = {}) {
  const store = new MemoryStateStore();
  // The reference kernel, so the engine's bookkeeping is checked bit for bit against `step`;
  // the default kernels' numerics are tested in kernels.test.ts and nativeKernel.test.ts.
  return { model, store, stepper: new KeyedStepper({ model, store, kernel: referenceKernel, ...options }) };
}

describe('KeyedStepper', () => {
  it('gives each key of an interleaved batch exactly what step gives on its own sequence', async () => {
    const { model, stepper } = setup();
    const batch = interleaved(60, 5);
    expect(new Set(batch.map((e) => e.event!.key)).size).toBeGreaterThan(2);
    const outcomes = await stepper.process(batch);
    expect(outcomes.map((o) => o.kind)).toEqual(batch.map(() => 'prediction'));
    expect(predictions(outcomes)).toEqual(expectedByStep(model, batch));
  });

  it('carries state across batches as if they were one', async () => {
    const { model, stepper } = setup();
    const events = interleaved(30, 3);
    const first = await stepper.process(events.slice(0, 11));
    const second = await stepper.process(events.slice(11));
    expect(predictions([...first, ...second])).toEqual(expectedByStep(model, events));
  });

  it('handles a multi-input model', async () => {
    const { model, stepper } = setup(twoInputModel());
    const events = [
      at(1, { key: 'a', ts: 1, inputs: { a: [0.5, -1], b: [2] } }),
      at(2, { key: 'b', ts: 2, inputs: { a: [0.1, 0.2], b: [-0.3] } }),
      at(3, { key: 'a', ts: 3, inputs: { b: [1], a: [1, 1] } }),
    ];
    const outcomes = await stepper.process(events);
    expect(predictions(outcomes)).toEqual(expectedByStep(model, events));
    expect(predictions(outcomes)[0].model).toMatch(/^pair@[0-9a-f]{8}$/);
  });

  it('counts seq per key and writes back seq, ts, position, id and fingerprint', async () => {
    const { model, store, stepper } = setup();
    const outcomes = await stepper.process([
      at(1, { key: 'a', ts: 10, features: [1, 0, 0] }),
      at(2, { key: 'b', ts: 20, features: [0, 1, 0] }),
      at(3, { key: 'a', ts: 30, features: [0, 0, 1], id: 'ev-3' }),
    ]);
    expect(predictions(outcomes).map((p) => [p.key, p.seq, p.model])).toEqual([
      ['a', 1, 'tiny@1'],
      ['b', 1, 'tiny@1'],
      ['a', 2, 'tiny@1'],
    ]);
    const [a] = await store.getMany(['a']);
    expect(a).toMatchObject({
      seq: 2,
      ts: 30,
      lastApplied: { kind: 'line', file: FILE, line: 3 },
      lastId: 'ev-3',
      fingerprint: modelFingerprint(model),
    });
  });

  it('starts a key afresh, seq 1, on reset: true', async () => {
    const { model, stepper } = setup();
    const events = [
      at(1, { key: 'a', ts: 1, features: [1, 2, 3] }),
      at(2, { key: 'a', ts: 2, features: [1, 2, 3] }),
      at(3, { key: 'a', ts: 3, features: [1, 2, 3], reset: true }),
      at(4, { key: 'a', ts: 4, features: [1, 2, 3] }),
    ];
    const got = predictions(await stepper.process(events));
    expect(got.map((p) => p.seq)).toEqual([1, 2, 1, 2]);
    expect(got[2].output).toEqual(got[0].output);
    expect(got).toEqual(expectedByStep(model, events));
  });

  it('rejects undecodable and wrong-size events in place, leaving state untouched', async () => {
    const { model, store, stepper } = setup();
    const outcomes = await stepper.process([
      rawAt(1, '{"key":"a","ts":1,"features":[1,2,3]}'),
      rawAt(2, '{"key":"a",'),
      rawAt(3, '{"key":"a","ts":3,"features":[1,2]}'),
      rawAt(4, '{"key":"b","ts":4,"features":[1,2]}'),
      rawAt(5, '{"key":"a","ts":5,"features":[3,2,1]}'),
    ]);
    expect(outcomes.map((o) => o.kind)).toEqual([
      'prediction',
      'rejected',
      'rejected',
      'rejected',
      'prediction',
    ]);
    expect(outcomes[2]).toEqual({
      kind: 'rejected',
      code: 'EVENT_WRONG_SIZE',
      reason: 'features has 2 values, the model takes 3',
      raw: '{"key":"a","ts":3,"features":[1,2]}',
      position: { kind: 'line', file: FILE, line: 3 },
    });
    expect(outcomes[1]).toMatchObject({ code: 'EVENT_MALFORMED_JSON' });
    expect(predictions(outcomes)).toEqual(
      expectedByStep(model, [
        at(1, { key: 'a', ts: 1, features: [1, 2, 3] }),
        at(5, { key: 'a', ts: 5, features: [3, 2, 1] }),
      ]),
    );
    expect(await store.getMany(['b'])).toEqual([undefined]);
  });

  it('rejects decoded features float32 cannot hold, a missing value included, leaving state untouched', async () => {
    const { model, store, stepper } = setup();
    // A hole, as an event built in code may have: it would step NaN into the key's state for good.
    const holed: number[] = [];
    holed[0] = 1;
    holed[2] = 3;
    const outcomes = await stepper.process([
      at(1, { key: 'a', ts: 1, features: [1, 1e39, 0] }),
      at(2, { key: 'a', ts: 2, features: holed }),
      at(3, { key: 'b', ts: 3, features: holed }),
      at(4, { key: 'a', ts: 4, features: [1, 2, 3] }),
    ]);
    expect(outcomes.slice(0, 3)).toMatchObject([
      {
        kind: 'rejected',
        code: 'EVENT_INVALID',
        reason: 'invalid event: features[1] is 1e+39, outside the float32 range',
      },
      {
        kind: 'rejected',
        code: 'EVENT_INVALID',
        reason: 'invalid event: features[1] is undefined, outside the float32 range',
      },
      { kind: 'rejected', code: 'EVENT_INVALID' },
    ]);
    expect(predictions(outcomes)).toEqual(
      expectedByStep(model, [at(4, { key: 'a', ts: 4, features: [1, 2, 3] })]),
    );
    expect(await store.getMany(['b'])).toEqual([undefined]);
  });

  it('reports a redelivered position as a duplicate and does not step it again', async () => {
    const { store, stepper } = setup();
    const events = interleaved(20, 3);
    const first = await stepper.process(events);
    const before = new Map<string, unknown>();
    for await (const [k, r] of store.entries()) before.set(k, { ...r, state: Array.from(r.state) });

    // Replaying from line 15 on: lines 15..20 are redeliveries, 21 is new.
    const again = [...events.slice(14), at(21, { key: 'k0', ts: 9999, features: [0, 0, 0] })];
    const second = await stepper.process(again);
    // A key's last applied event gets its prediction again, identical; older ones are duplicates.
    const lastLine = new Map(events.map((e) => [e.event!.key, e.position] as const));
    const firstPredictions = first as Array<Extract<Outcome, { kind: 'prediction' }>>;
    expect(second.slice(0, 6)).toEqual(
      events
        .slice(14)
        .map((e, i) =>
          lastLine.get(e.event!.key) === e.position
            ? { ...firstPredictions[14 + i], redelivered: true }
            : { kind: 'duplicate', key: e.event!.key, position: e.position },
        ),
    );
    expect(second.slice(0, 6).some((o) => o.kind === 'duplicate')).toBe(true);
    expect(second.slice(0, 6).some((o) => o.kind === 'prediction')).toBe(true);
    expect(second[6].kind).toBe('prediction');
    const k0Seq = predictions(first).filter((p) => p.key === 'k0').length;
    expect((second[6] as { prediction: Prediction }).prediction.seq).toBe(k0Seq + 1);
    for await (const [k, r] of store.entries()) {
      if (k !== 'k0') expect({ ...r, state: Array.from(r.state) }).toEqual(before.get(k));
    }
  });

  it('recognises redelivery by id, and by Kafka offset within the same batch', async () => {
    const { stepper } = setup();
    const none = { kind: 'none' } as const;
    const byId = await stepper.process([
      { event: { key: 'a', ts: 1, features: [1, 2, 3], id: 'x' }, position: none },
      { event: { key: 'a', ts: 1, features: [1, 2, 3], id: 'x' }, position: none },
      { event: { key: 'a', ts: 2, features: [1, 2, 3], id: 'y' }, position: none },
    ]);
    expect(byId.map((o) => o.kind)).toEqual(['prediction', 'prediction', 'prediction']);
    expect(byId[1]).toEqual({ ...byId[0], redelivered: true });

    const off = (offset: string) => ({ kind: 'offset', topic: 't', partition: 0, offset }) as const;
    const byOffset = await stepper.process([
      { event: { key: 'b', ts: 1, features: [1, 2, 3] }, position: off('9') },
      { event: { key: 'b', ts: 1, features: [1, 2, 3] }, position: off('10') },
      { event: { key: 'b', ts: 1, features: [1, 2, 3] }, position: off('9') },
      { event: { key: 'b', ts: 1, features: [1, 2, 3] }, position: { ...off('9'), partition: 1 } },
    ]);
    expect(byOffset.map((o) => o.kind)).toEqual(['prediction', 'prediction', 'duplicate', 'prediction']);
  });

  it("refuses, by default, a stored state written by another model: that key's events are rejected, the rest applied", async () => {
    const { model, store, stepper } = setup();
    const foreign = {
      seq: 4,
      ts: 0,
      state: createState(tinyLstm()),
      lastApplied: { kind: 'none' },
      fingerprint: 'f00',
    } as const;
    await store.putMany([['a', foreign]]);
    const events = [
      at(1, { key: 'b', ts: 1, features: [1, 2, 3] }),
      at(2, { key: 'a', ts: 1, features: [1, 2, 3] }),
    ];
    const outcomes = await stepper.process(events);
    expect(outcomes.map((o) => o.kind)).toEqual(['prediction', 'rejected']);
    const rejected = outcomes[1] as Extract<Outcome, { kind: 'rejected' }>;
    expect(rejected.code).toBe('STATE_MODEL_MISMATCH');
    expect(rejected.reason).toMatch(/^state of key 'a' was written by model f00, not by tiny@1/);
    expect(rejected.position).toEqual(events[1].position);
    expect(predictions(outcomes)).toEqual(expectedByStep(model, [events[0]]));
    const [a, b] = await store.getMany(['a', 'b']);
    expect(a).toEqual({ ...foreign, state: foreign.state });
    expect(b?.seq).toBe(1);
  });

  it("with onModelMismatch 'reset', reports the reset and starts the key at seq 1", async () => {
    const { model, store, stepper } = setup(tinyLstm(), { onModelMismatch: 'reset' });
    const other = tinyLstm(99);
    await store.putMany([
      [
        'a',
        {
          seq: 4,
          ts: 0,
          state: Float32Array.from({ length: 8 }, () => 0.5),
          lastApplied: { kind: 'none' },
          fingerprint: modelFingerprint(other),
        },
      ],
    ]);
    const events = [
      at(1, { key: 'a', ts: 1, features: [1, 2, 3] }),
      at(2, { key: 'a', ts: 2, features: [3, 2, 1] }),
    ];
    const outcomes = await stepper.process(events);
    expect(outcomes.map((o) => o.kind)).toEqual(['state-reset', 'prediction', 'prediction']);
    expect(outcomes[0]).toMatchObject({
      key: 'a',
      reason: expect.stringMatching(/^state of key 'a' was written by model /),
    });
    expect(predictions(outcomes)).toEqual(expectedByStep(model, events));
    expect((await store.getMany(['a']))[0]?.fingerprint).toBe(modelFingerprint(model));
  });

  it('applies batches one after another even when process is not awaited', async () => {
    const { model, stepper } = setup();
    const events = interleaved(40, 4);
    const runs = [0, 10, 20, 30].map((i) => stepper.process(events.slice(i, i + 10)));
    const outcomes = (await Promise.all(runs)).flat();
    expect(predictions(outcomes)).toEqual(expectedByStep(model, events));
  });

  it('resolves an empty batch to no outcomes without touching the store', async () => {
    const { stepper } = setup();
    expect(await stepper.process([])).toEqual([]);
  });
});
