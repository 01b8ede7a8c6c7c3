import { describe, expect, it } from 'vitest';
import type { Event } from '../../src/events/types.js';
import { EnginePipeline, type Result } from '../../src/server/pipeline.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import type { StateRecord, StoreAnswer } from '../../src/state/types.js';
import { tinyLstm } from '../helpers/models.js';

/**
 * The in-memory store, with writes that can be held: while held, a batch stays in flight (as
 * during a slow fsync) until `release` lets its write through, or `fail` fails it.
 */
class HeldStore extends MemoryStateStore {
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;
  private refuse: ((err: Error) => void) | undefined;
  private writing: (() => void) | undefined;
  /** Resolves when a held write has started. */
  started: Promise<void> = Promise.resolve();

  hold(): void {
    this.gate = new Promise((resolve, reject) => {
      this.open = resolve;
      this.refuse = reject;
    });
    this.started = new Promise((resolve) => {
      this.writing = resolve;
    });
  }

  release(): void {
    this.gate = undefined;
    this.open?.();
  }

  fail(err: Error): void {
    this.gate = undefined;
    this.refuse?.(err);
  }

  override putMany(entries: ReadonlyArray<readonly [string, StateRecord]>): StoreAnswer<void> {
    const gate = this.gate;
    if (gate === undefined) return super.putMany(entries);
    this.writing?.();
    return gate.then(() => super.putMany(entries));
  }
}

function event(key: string, i: number): Event {
  return { key, ts: 1_700_000_000_000 + i, features: [i / 10, -0.5, 1] };
}

function setUp(maxBatch: number) {
  const store = new HeldStore();
  const batches: number[] = [];
  const pipeline = new EnginePipeline({
    stepper: { model: tinyLstm(), store },
    maxBatch,
    maxDelayMs: 0,
    hooks: { onBatch: (size) => batches.push(size) },
  });
  const submit = (e: Event) => new Promise<Result>((resolve) => pipeline.submit(e, resolve));
  return { store, batches, pipeline, submit };
}

describe('EnginePipeline: group commit', () => {
  it('applies the events of every submitter that arrive while a batch is applied as the next batch', async () => {
    const { store, batches, pipeline, submit } = setUp(256);
    store.hold();
    const first = submit(event('a', 0));
    await store.started;
    // Two connections' events, while the first batch's write is held.
    const rest = [
      submit(event('a', 1)),
      submit(event('b', 2)),
      submit(event('c', 3)),
      submit(event('a', 4)),
      submit(event('d', 5)),
    ];
    store.release();
    const results = await Promise.all([first, ...rest]);
    expect(batches).toEqual([1, 5]);
    expect(
      results.map((r) => (r.kind === 'prediction' ? [r.prediction.key, r.prediction.seq] : r.kind)),
    ).toEqual([
      ['a', 1],
      ['a', 2],
      ['b', 1],
      ['c', 1],
      ['a', 3],
      ['d', 1],
    ]);
    await pipeline.drain();
  });

  it('cuts the events that gathered into batches of at most maxBatch, in order', async () => {
    const { store, batches, pipeline, submit } = setUp(2);
    store.hold();
    const first = submit(event('k', 0));
    await store.started;
    const rest = [1, 2, 3, 4, 5].map((i) => submit(event('k', i)));
    store.release();
    const results = await Promise.all([first, ...rest]);
    expect(batches).toEqual([1, 2, 2, 1]);
    expect(results.map((r) => (r.kind === 'prediction' ? r.prediction.seq : r.kind))).toEqual([
      1, 2, 3, 4, 5, 6,
    ]);
    await pipeline.drain();
  });

  it('answers the failed batch and the events waiting behind it unavailable, then goes on', async () => {
    const { store, pipeline, submit } = setUp(256);
    store.hold();
    const first = submit(event('a', 0));
    await store.started;
    const waiting = submit(event('b', 1));
    store.fail(new Error('disk full'));
    const [a, b] = await Promise.all([first, waiting]);
    expect(a.kind).toBe('unavailable');
    expect(b.kind).toBe('unavailable');
    const after = await submit(event('a', 2));
    // Nothing of the failed batch was written: key a starts afresh.
    expect(after.kind === 'prediction' && after.prediction.seq).toBe(1);
    await pipeline.drain();
  });

  it("goes on answering the others when one submitter's callback or a prediction listener throws", async () => {
    const store = new MemoryStateStore();
    const callbackErrors: unknown[] = [];
    const pipeline = new EnginePipeline({
      stepper: { model: tinyLstm(), store },
      maxBatch: 256,
      maxDelayMs: 0,
      hooks: { onCallbackError: (err) => callbackErrors.push(err) },
    });
    const heard: string[] = [];
    pipeline.onPrediction((p) => {
      if (p.key === 'bad') throw new Error('subscriber broke');
      heard.push(p.key);
    });
    pipeline.submit(event('bad', 0), () => {
      throw new Error('connection broke');
    });
    const good = await new Promise<Result>((resolve) => pipeline.submit(event('good', 1), resolve));
    expect(good.kind === 'prediction' && good.prediction.seq).toBe(1);
    expect(heard).toEqual(['good']);
    expect(callbackErrors.map((e) => (e as Error).message)).toEqual(['connection broke', 'subscriber broke']);
    await pipeline.drain();
  });
});

describe('EnginePipeline: faults of its own hooks and engine', () => {
  it('answers every event when a metrics hook throws, and reports the throw', async () => {
    const callbackErrors: unknown[] = [];
    let results = 0;
    const pipeline = new EnginePipeline({
      stepper: { model: tinyLstm(), store: new MemoryStateStore() },
      maxBatch: 256,
      maxDelayMs: 0,
      hooks: {
        onResult: () => {
          if (results++ === 0) throw new Error('metrics broke');
        },
        onCallbackError: (err) => callbackErrors.push(err),
      },
    });
    const submit = (e: Event) => new Promise<Result>((resolve) => pipeline.submit(e, resolve));
    const answers = await Promise.all([submit(event('a', 0)), submit(event('b', 1))]);
    expect(answers.map((r) => r.kind)).toEqual(['prediction', 'prediction']);
    expect(callbackErrors.map((e) => (e as Error).message)).toEqual(['metrics broke']);
    await pipeline.drain();
  });

  it('answers a failed batch unavailable even when the failure hook throws, and goes on', async () => {
    const store = new HeldStore();
    const callbackErrors: unknown[] = [];
    const pipeline = new EnginePipeline({
      stepper: { model: tinyLstm(), store },
      maxBatch: 256,
      maxDelayMs: 0,
      hooks: {
        onFailure: () => {
          throw new Error('logger broke');
        },
        onCallbackError: (err) => callbackErrors.push(err),
      },
    });
    const submit = (e: Event) => new Promise<Result>((resolve) => pipeline.submit(e, resolve));
    store.hold();
    const first = submit(event('a', 0));
    await store.started;
    store.fail(new Error('disk full'));
    expect((await first).kind).toBe('unavailable');
    expect(callbackErrors.map((e) => (e as Error).message)).toEqual(['logger broke']);
    expect((await submit(event('a', 1))).kind).toBe('prediction');
    await pipeline.drain();
  });

  it('answers unavailable, with no unhandled rejection, when outcomes do not match the events; then goes on', async () => {
    const failures: unknown[] = [];
    const real = new EnginePipeline({
      stepper: { model: tinyLstm(), store: new MemoryStateStore() },
      maxBatch: 256,
      maxDelayMs: 0,
    }).stepper;
    let broken = true;
    const pipeline = new EnginePipeline({
      stepper: {
        // One outcome too many for the first batch: the pipeline cannot tell whose is whose.
        async process(batch) {
          const outcomes = await real.process(batch);
          if (!broken) return outcomes;
          broken = false;
          return [...outcomes, ...outcomes];
        },
        close: () => real.close(),
        modelLabel: real.modelLabel,
      },
      maxBatch: 256,
      maxDelayMs: 0,
      hooks: { onFailure: (err) => failures.push(err) },
    });
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      const submit = (e: Event) => new Promise<Result>((resolve) => pipeline.submit(e, resolve));
      const first = await submit(event('a', 0));
      // Both of the first batch's events were answered from the doubled outcomes; the extra ones
      // found no ticket.
      expect(first.kind).toBe('prediction');
      expect(failures.map((e) => (e as Error).message)).toEqual([
        'engine emitted more outcomes than events were submitted',
      ]);
      const next = await submit(event('b', 1));
      expect(next.kind).toBe('prediction');
      await new Promise((r) => setTimeout(r, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    await pipeline.drain();
  });
});
