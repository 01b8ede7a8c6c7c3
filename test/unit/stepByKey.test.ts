import { firstValueFrom, from, Subject, take, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import { type StepInput, stepByKey } from '../../src/engine/stepByKey.js';
import type { Envelope, Outcome } from '../../src/engine/types.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import type { StateStore } from '../../src/state/types.js';
import { at, interleaved, rawAt } from '../helpers/envelopes.js';
import { tinyLstm } from '../helpers/models.js';

function stepper(store: StateStore = new MemoryStateStore()): KeyedStepper {
  return new KeyedStepper({ model: tinyLstm(), store });
}

function run(envelopes: Envelope[], maxBatch: number): Promise<Outcome[]> {
  return firstValueFrom(from(envelopes).pipe(stepByKey(stepper(), { maxBatch }), toArray()));
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('stepByKey', () => {
  it('gives the same outcomes whatever the batch size', async () => {
    const envelopes = [
      ...interleaved(100, 6),
      rawAt(101, 'not json'),
      at(102, { key: 'k1', ts: 1, features: [1, 2, 3], reset: true }),
      ...interleaved(10, 6).map((e) => ({ ...e, position: { ...e.position, line: 103 } })),
      // An older redelivery: its key has applied later lines since.
      interleaved(100, 6)[0],
    ];
    const reference = await run(envelopes, 1);
    expect(reference).toHaveLength(envelopes.length);
    expect(reference.filter((o) => o.kind === 'prediction').length).toBeGreaterThan(100);
    expect(reference.some((o) => o.kind === 'prediction' && o.redelivered)).toBe(true);
    expect(reference.some((o) => o.kind === 'duplicate')).toBe(true);
    for (const maxBatch of [7, 256]) expect(await run(envelopes, maxBatch)).toEqual(reference);
  });

  it('flushes a partial batch after maxDelayMs without waiting for completion', async () => {
    const source = new Subject<Envelope>();
    const seen: Outcome[] = [];
    const sub = source
      .pipe(stepByKey(stepper(), { maxBatch: 100, maxDelayMs: 10 }))
      .subscribe((o) => seen.push(o));
    source.next(at(1, { key: 'a', ts: 1, features: [1, 2, 3] }));
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(seen.map((o) => o.kind)).toEqual(['prediction']);
    sub.unsubscribe();
  });

  it('propagates a failing batch as an error', async () => {
    const broken = new MemoryStateStore();
    await broken.close();
    const result = firstValueFrom(from(interleaved(3, 2)).pipe(stepByKey(stepper(broken)), toArray()));
    await expect(result).rejects.toMatchObject({ code: 'STATE_CLOSED' });
  });

  it('stops processing and unsubscribes from the source when unsubscribed', async () => {
    const source = new Subject<Envelope>();
    const s = stepper();
    let batches = 0;
    const process = s.process.bind(s);
    s.process = (batch) => {
      batches++;
      return process(batch);
    };
    const seen: Outcome[] = [];
    const sub = source.pipe(stepByKey(s, { maxBatch: 1 }), take(2)).subscribe((o) => seen.push(o));
    for (const e of interleaved(5, 2)) source.next(e);
    await tick();
    expect(seen).toHaveLength(2);
    expect(sub.closed).toBe(true);
    expect(source.observed).toBe(false);
    const after = batches;
    source.next(at(99, { key: 'z', ts: 1, features: [1, 2, 3] }));
    await tick();
    expect(batches).toBe(after);
    expect(batches).toBeLessThan(5);
  });

  it('takes plain events and JSON texts as well as envelopes, with the same predictions', async () => {
    const lines = [
      '{"key":"a","ts":1000,"features":[1,2,3]}',
      '{"key":"b","ts":"2024-11-27T10:00:00Z","features":[0.5,-1,2]}',
      '{"key":"a","ts":5000,"features":[-1,0,1]}',
    ];
    const asEnvelopes = await run(
      lines.map((raw, i) => rawAt(i + 1, raw)),
      256,
    );
    const predictionsOf = (outcomes: Outcome[]) =>
      outcomes.map((o) => (o.kind === 'prediction' ? o.prediction : o.kind));
    // What a library user writes first: the parsed lines as they are, or the lines themselves.
    for (const input of [lines.map((l) => JSON.parse(l)), lines]) {
      const outcomes = await firstValueFrom(from(input).pipe(stepByKey(stepper()), toArray()));
      expect(outcomes.map((o) => o.kind)).toEqual(['prediction', 'prediction', 'prediction']);
      expect(predictionsOf(outcomes)).toEqual(predictionsOf(asEnvelopes));
      expect(outcomes[0]).toMatchObject({ position: { kind: 'none' } });
    }
  });

  it('rejects a plain object that is not an event with the code and reason its text would get', async () => {
    const bad = [
      { key: 'a', ts: 1 },
      { ts: 1, features: [1, 2, 3] },
      42,
      { key: 'a', ts: 1, features: [1, 2] },
    ];
    // What untyped JavaScript (or JSON.parse's `any`) can hand the operator.
    const untyped = bad as unknown as StepInput[];
    const outcomes = await firstValueFrom(from(untyped).pipe(stepByKey(stepper()), toArray()));
    const fromText = await run(
      bad.map((b, i) => rawAt(i + 1, JSON.stringify(b))),
      256,
    );
    expect(outcomes.map((o) => o.kind)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
    expect(outcomes.map((o) => o.kind === 'rejected' && [o.code, o.reason, o.raw])).toEqual(
      fromText.map((o) => o.kind === 'rejected' && [o.code, o.reason, o.raw]),
    );
    const codes = outcomes.map((o) => o.kind === 'rejected' && o.code);
    expect(codes).toEqual(['EVENT_INVALID', 'EVENT_INVALID', 'EVENT_INVALID', 'EVENT_WRONG_SIZE']);
  });

  it('rejects a maxBatch that is not a positive integer', () => {
    expect(() => stepByKey(stepper(), { maxBatch: 0 })).toThrow('maxBatch must be a positive integer, got 0');
  });
});
