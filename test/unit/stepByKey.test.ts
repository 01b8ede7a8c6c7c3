import { firstValueFrom, from, Subject, take, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import { stepByKey } from '../../src/engine/stepByKey.js';
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

  it('rejects a maxBatch that is not a positive integer', () => {
    expect(() => stepByKey(stepper(), { maxBatch: 0 })).toThrow('maxBatch must be a positive integer, got 0');
  });
});
