import { describe, expect, it } from 'vitest';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import { StagedStore } from '../../src/state/stagedStore.js';
import { awkwardState, expectSameRecord, makeRecord } from './records.js';
import { describeStateStoreContract } from './storeContract.js';

// Writes held in the staging layer must follow the same contract as a store's: in particular they
// share no memory with the records given (the engine reuses its buffers from batch to batch).
describeStateStoreContract(
  'StagedStore over a MemoryStateStore',
  async () => ({ store: new StagedStore(new MemoryStateStore()), cleanup: async () => {} }),
  { durable: false },
);

describe('StagedStore reads into buffers', () => {
  it('puts base and staged records into the arrays given, whether or not anything is staged', async () => {
    const base = new MemoryStateStore();
    const fromBase = makeRecord(1, 8, { lastOutput: awkwardState(2, 1) });
    const staged = makeRecord(2, 8, { state: awkwardState(8, 2) });
    await base.putMany([['b', fromBase]]);
    const store = new StagedStore(base);
    const states = new Float32Array(16);
    const outputs = new Float32Array(4);
    const into = {
      states: [states.subarray(0, 8), states.subarray(8)],
      outputs: [outputs.subarray(0, 2), outputs.subarray(2)],
    };

    // Nothing staged: the read goes to the base with the arrays.
    const [, b] = await store.getMany(['none', 'b'], into);
    expectSameRecord(b!, fromBase);
    expect(b!.state).toBe(into.states[1]);
    expect(b!.lastOutput).toBe(into.outputs[1]);

    await store.putMany([['s', staged]]);
    states.fill(0);
    const [s, b2] = await store.getMany(['s', 'b'], into);
    expectSameRecord(s!, staged);
    expectSameRecord(b2!, fromBase);
    expect(s!.state).toBe(into.states[0]);
    expect(b2!.state).toBe(into.states[1]);
    expect(b2!.lastOutput).toBe(into.outputs[1]);
    await store.close();
  });
});

describe('StagedStore as a record cache grouped by partition', () => {
  it('keeps one record per key, the latest, across writes until its group is cleared', async () => {
    const base = new MemoryStateStore();
    const store = new StagedStore(base);
    store.group = 0;
    for (let seq = 1; seq <= 5; seq++) await store.putMany([['a', makeRecord(seq, 4)]]);
    store.group = 1;
    await store.putMany([['b', makeRecord(7, 4)]]);
    await store.deleteMany(['c']);

    const zero = store.changes(0);
    expect(zero.puts.map(([k, r]) => [k, r.seq])).toEqual([['a', makeRecord(5, 4).seq]]);
    expect(zero.deletes).toEqual([]);
    expect(store.changes(1).puts.map(([k]) => k)).toEqual(['b']);
    expect(store.changes(1).deletes).toEqual(['c']);
    expect(store.stagedKeys()).toBe(3);
    expect(store.stagedKeys(1)).toBe(2);

    // Clearing one group leaves the other's writes staged and readable.
    store.clear(0);
    expect(store.changes(0).puts).toEqual([]);
    const [a, b] = await store.getMany(['a', 'b']);
    expect(a).toBeUndefined();
    expect(b?.seq).toBe(makeRecord(7, 4).seq);
    expect(store.changes().puts.map(([k]) => k)).toEqual(['b']);
    store.clear();
    expect(store.stagedKeys()).toBe(0);
    await store.close();
  });

  it('moves a key to the group that wrote it last', async () => {
    const store = new StagedStore(new MemoryStateStore());
    store.group = 3;
    await store.putMany([['k', makeRecord(1, 2)]]);
    store.group = 4;
    await store.putMany([['k', makeRecord(2, 2)]]);
    expect(store.changes(3).puts).toEqual([]);
    expect(store.changes(4).puts.map(([k, r]) => [k, r.seq])).toEqual([['k', makeRecord(2, 2).seq]]);
    store.clear(3);
    expect((await store.getMany(['k']))[0]?.seq).toBe(makeRecord(2, 2).seq);
    await store.close();
  });
});
