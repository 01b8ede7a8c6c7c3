import { MemoryStateStore } from '../../src/state/memoryStore.js';
import { StagedStore } from '../../src/state/stagedStore.js';
import { describeStateStoreContract } from './storeContract.js';

// Writes held in the staging layer must follow the same contract as a store's: in particular they
// share no memory with the records given (the engine reuses its buffers from batch to batch).
describeStateStoreContract(
  'StagedStore over a MemoryStateStore',
  async () => ({ store: new StagedStore(new MemoryStateStore()), cleanup: async () => {} }),
  { durable: false },
);
