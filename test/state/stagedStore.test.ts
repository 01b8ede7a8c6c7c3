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
  it('puts base and staged records in their keys’ places, whether or not anything is staged', async () => {
    const base = new MemoryStateStore();
    const fromBase = makeRecord(1, 8, { lastOutput: awkwardState(2, 1) });
    const staged = makeRecord(2, 8, { state: awkwardState(8, 2) });
    await base.putMany([['b', fromBase]]);
    const store = new StagedStore(base);
    const into = {
      stateSize: 8,
      states: new Float32Array(16),
      outputSize: 2,
      outputs: new Float32Array(4),
    };
    const inPlace = (view: Float32Array, buffer: Float32Array, at: number) =>
      view.buffer === buffer.buffer && view.byteOffset === buffer.byteOffset + at * 4;

    // Nothing staged: the read goes to the base with the buffers.
    const [, b] = await store.getMany(['none', 'b'], into);
    expectSameRecord(b!, fromBase);
    expect(inPlace(b!.state, into.states, 8)).toBe(true);
    expect(inPlace(b!.lastOutput!, into.outputs, 2)).toBe(true);

    await store.putMany([['s', staged]]);
    into.states.fill(0);
    const [s, b2] = await store.getMany(['s', 'b'], into);
    expectSameRecord(s!, staged);
    expectSameRecord(b2!, fromBase);
    expect(inPlace(s!.state, into.states, 0)).toBe(true);
    expect(inPlace(b2!.state, into.states, 8)).toBe(true);
    expect(inPlace(b2!.lastOutput!, into.outputs, 2)).toBe(true);
    await store.close();
  });
});
