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
