import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import type { Envelope, Rejected } from '../../src/engine/types.js';
import type { Event } from '../../src/events/types.js';
import { createState, modelFingerprint, step } from '../../src/model/index.js';
import { warmKeys } from '../../src/rollout/warm.js';
import { ndjsonLines } from '../../src/sources/ndjsonFile.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import type { StateRecord, StateStore } from '../../src/state/types.js';
import { at, interleaved } from '../helpers/envelopes.js';
import { tempDir, writeLines } from '../helpers/fixtures.js';
import { tinyLstm } from '../helpers/models.js';
import { sameBits } from '../state/records.js';

const model = tinyLstm();

async function* asyncOf<T>(items: readonly T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

/** Each key's events, in order. */
function byKey(envelopes: readonly Envelope[]): Map<string, Event[]> {
  const out = new Map<string, Event[]>();
  for (const e of envelopes) {
    const event = e.event!;
    const list = out.get(event.key);
    if (list) list.push(event);
    else out.set(event.key, [event]);
  }
  return out;
}

async function record(store: StateStore, key: string): Promise<StateRecord> {
  const [found] = await store.getMany([key]);
  if (!found) throw new Error(`no state for ${key}`);
  return found;
}

/** A store that counts how many records each putMany writes. */
function countingStore(base: StateStore): StateStore & { writes: number[] } {
  const writes: number[] = [];
  return Object.assign(Object.create(base) as StateStore, {
    writes,
    putMany(entries: ReadonlyArray<readonly [string, StateRecord]>) {
      writes.push(entries.length);
      return base.putMany(entries);
    },
  });
}

describe('warmKeys', () => {
  it("writes each key's state after its whole history, with the model's fingerprint and warmedFrom", async () => {
    const history = interleaved(600, 17);
    const store = countingStore(new MemoryStateStore());
    const summary = await warmKeys({ model, events: asyncOf(history), store, maxBatch: 64 });
    const keys = byKey(history);
    expect(summary).toMatchObject({ events: 600, stepped: 600, rejected: 0, duplicates: 0, keys: keys.size });
    expect(summary.eventsPerSecond).toBeGreaterThan(0);
    // Staged and written once per key, not once per batch.
    expect(store.writes).toEqual([keys.size]);

    // The reference: each key's events stepped alone, one after another, by the pure `step`.
    for (const [key, events] of keys) {
      let state = createState(model);
      for (const event of events) state = step(model, state, [event.features!]).state;
      const got = await record(store, key);
      expect(got.fingerprint).toBe(modelFingerprint(model));
      expect(got.warmedFrom).toBe(events.length);
      expect(got.seq).toBe(events.length);
      expect(got.ts).toBe(events.at(-1)!.ts);
      for (let i = 0; i < state.length; i++) expect(got.state[i]).toBeCloseTo(state[i], 6);
    }
  });

  it('gives the same bits as the serving engine stepping the history one event at a time', async () => {
    const history = interleaved(400, 9, 3);
    const warmed = new MemoryStateStore();
    await warmKeys({ model, events: asyncOf(history), store: warmed, maxBatch: 1000 });
    const live = new MemoryStateStore();
    const stepper = new KeyedStepper({ model, store: live });
    for (const e of history) await stepper.process([e]);
    for (const key of byKey(history).keys()) {
      const [a, b] = [await record(warmed, key), await record(live, key)];
      expect(sameBits(a.state, b.state), key).toBe(true);
      expect(sameBits(a.lastOutput!, b.lastOutput!), key).toBe(true);
      expect(b.warmedFrom).toBeUndefined();
    }
  });

  it('counts a key from its last reset: the state is derived from the events since', async () => {
    const history = [
      at(1, { key: 'a', ts: 1, features: [1, 0, 0] }),
      at(2, { key: 'a', ts: 2, features: [0, 1, 0] }),
      at(3, { key: 'a', ts: 3, features: [0, 0, 1], reset: true }),
      at(4, { key: 'a', ts: 4, features: [1, 1, 0] }),
    ];
    const store = new MemoryStateStore();
    await warmKeys({ model, events: history, store });
    const got = await record(store, 'a');
    expect(got.warmedFrom).toBe(2);
    let state = createState(model);
    for (const e of history.slice(2)) state = step(model, state, [e.event!.features!]).state;
    for (let i = 0; i < state.length; i++) expect(got.state[i]).toBeCloseTo(state[i], 6);
  });

  it('passes every bad event to onRejected in input order, counts it and goes on', async () => {
    const rejected: Rejected[] = [];
    const tooDeep: Rejected = {
      kind: 'rejected',
      code: 'EVENT_TOO_DEEP',
      reason: 'too deep',
      raw: '[[[[]]]]',
      position: { kind: 'line', file: 'f', line: 3 },
    };
    const store = new MemoryStateStore();
    const summary = await warmKeys({
      model,
      store,
      events: asyncOf([
        { raw: '{"key":"a","ts":1,"features":[1,2,3]}', position: { kind: 'line', file: 'f', line: 1 } },
        { raw: '{"key":', position: { kind: 'line', file: 'f', line: 2 } },
        tooDeep,
        { raw: '{"key":"a","ts":2,"features":[1,2]}', position: { kind: 'line', file: 'f', line: 4 } },
        { raw: '{"key":"b","ts":2,"values":{"x":1}}', position: { kind: 'line', file: 'f', line: 5 } },
        { raw: '{"key":"a","ts":3,"features":[3,2,1]}', position: { kind: 'line', file: 'f', line: 6 } },
      ]),
      onRejected: (r) => {
        rejected.push(r);
      },
    });
    expect(summary).toMatchObject({ events: 6, stepped: 2, rejected: 4, keys: 1 });
    expect(rejected.map((r) => [r.position.kind === 'line' && r.position.line, r.code])).toEqual([
      [2, 'EVENT_MALFORMED_JSON'],
      [3, 'EVENT_TOO_DEEP'],
      [4, 'EVENT_WRONG_SIZE'],
      [5, 'EVENT_INVALID'],
    ]);
    expect((await record(store, 'a')).warmedFrom).toBe(2);
    expect(await store.size()).toBe(1);
  });

  it('run again steps nothing twice, and over a longer history continues each key', async () => {
    const history = interleaved(300, 5, 7);
    const store = new MemoryStateStore();
    await warmKeys({ model, events: asyncOf(history.slice(0, 200)), store, maxBatch: 32 });
    const again = await warmKeys({ model, events: asyncOf(history.slice(0, 200)), store, maxBatch: 32 });
    expect(again).toMatchObject({ events: 200, stepped: 0, duplicates: 200, keys: 0 });
    const rest = await warmKeys({ model, events: asyncOf(history), store, maxBatch: 32 });
    expect(rest).toMatchObject({ events: 300, stepped: 100, duplicates: 200 });

    const whole = new MemoryStateStore();
    await warmKeys({ model, events: asyncOf(history), store: whole, maxBatch: 32 });
    for (const [key, events] of byKey(history)) {
      const [a, b] = [await record(store, key), await record(whole, key)];
      expect(a.warmedFrom).toBe(events.length);
      expect(sameBits(a.state, b.state), key).toBe(true);
    }
  });

  it('writes states maxStagedKeys keys at a time, with the same result', async () => {
    const history = interleaved(500, 40, 11);
    const store = countingStore(new MemoryStateStore());
    const summary = await warmKeys({
      model,
      events: asyncOf(history),
      store,
      maxBatch: 16,
      maxStagedKeys: 8,
    });
    const keys = byKey(history);
    expect(summary.keys).toBe(keys.size);
    expect(store.writes.length).toBeGreaterThan(1);
    for (const n of store.writes) expect(n).toBeLessThan(8 + 16);
    const once = new MemoryStateStore();
    await warmKeys({ model, events: asyncOf(history), store: once, maxBatch: 16 });
    for (const [key, events] of keys) {
      const [a, b] = [await record(store, key), await record(once, key)];
      expect(a.warmedFrom).toBe(events.length);
      expect(sameBits(a.state, b.state), key).toBe(true);
    }
  });

  it('refuses the keys another model wrote unless told to reset them', async () => {
    const other = tinyLstm(99);
    const history = [
      at(1, { key: 'a', ts: 1, features: [1, 0, 0] }),
      at(2, { key: 'b', ts: 1, features: [0, 1, 0] }),
    ];
    const store = new MemoryStateStore();
    await warmKeys({ model: other, events: history.slice(0, 1), store });
    const rejected: Rejected[] = [];
    const refused = await warmKeys({
      model,
      events: history,
      store,
      onRejected: (r) => void rejected.push(r),
    });
    expect(refused).toMatchObject({ stepped: 1, rejected: 1, keys: 1 });
    expect(rejected[0]!.code).toBe('STATE_MODEL_MISMATCH');
    expect((await record(store, 'a')).fingerprint).toBe(modelFingerprint(other));

    const reset = await warmKeys({ model, events: history, store, onModelMismatch: 'reset' });
    expect(reset).toMatchObject({ stepped: 1, duplicates: 1, stateResets: 1 });
    const a = await record(store, 'a');
    expect([a.fingerprint, a.warmedFrom]).toEqual([modelFingerprint(model), 1]);
  });

  it('keeps warmedFrom while the key is served on, and drops it when its sequence starts over', async () => {
    const store = new MemoryStateStore();
    await warmKeys({ model, events: interleaved(50, 1), store });
    const stepper = new KeyedStepper({ model, store });
    await stepper.process([
      { event: { key: 'k0', ts: 5000, features: [1, 1, 1] }, position: { kind: 'none' } },
    ]);
    expect(await record(store, 'k0')).toMatchObject({ seq: 51, warmedFrom: 50 });
    await stepper.process([
      { event: { key: 'k0', ts: 5001, features: [1, 1, 1], reset: true }, position: { kind: 'none' } },
    ]);
    const after = await record(store, 'k0');
    expect(after.seq).toBe(1);
    expect('warmedFrom' in after).toBe(false);
  });

  it('reads an NDJSON archive into an LMDB store that keeps warmedFrom across a reopen', async () => {
    const dir = await tempDir('warm-lmdb');
    const history = interleaved(120, 6, 5);
    const file = await writeLines(
      join(dir, 'archive.ndjson'),
      history.map((e) => JSON.stringify(e.event)),
    );
    const store = await LmdbStore.open({ path: join(dir, 'state') });
    const summary = await warmKeys({ model, events: ndjsonLines(file), store });
    expect(summary).toMatchObject({ events: 120, stepped: 120, rejected: 0 });
    await store.close();
    const reopened = await LmdbStore.open({ path: join(dir, 'state') });
    const lastLine = new Map(history.map((e, i) => [e.event!.key, i + 1]));
    for (const [key, events] of byKey(history)) {
      const got = await record(reopened, key);
      expect(got.warmedFrom).toBe(events.length);
      // Where the state stands in the archive, so a second run skips what it applied.
      expect(got.lastApplied).toEqual({ kind: 'line', file, line: lastLine.get(key) });
    }
    await reopened.close();
  });

  it('refuses a batch or staging bound that is not a positive integer', async () => {
    const store = new MemoryStateStore();
    await expect(warmKeys({ model, events: [], store, maxBatch: 0 })).rejects.toThrow(/maxBatch/);
    await expect(warmKeys({ model, events: [], store, maxStagedKeys: 1.5 })).rejects.toThrow(/maxStagedKeys/);
  });
});
