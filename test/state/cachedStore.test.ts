import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CachedStore } from '../../src/state/cachedStore.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import type { StateRecord, StateStore } from '../../src/state/types.js';
import { expectSameRecord, makeRecord } from './records.js';
import { describeStateStoreContract } from './storeContract.js';

async function cachedLmdb(maxKeys: number) {
  const dir = await mkdtemp(join(tmpdir(), 'cellstream-cached-'));
  const path = join(dir, 'state');
  const open = async () =>
    new CachedStore({ backing: await LmdbStore.open({ path }), maxKeys, stateSize: 128, outputSize: 2 });
  return { store: await open(), reopen: open, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

// A small cache, so that the contract's larger tests run through evictions and reloads.
describeStateStoreContract('cached(lmdb)', () => cachedLmdb(64), { durable: true });

/** Counts the backing store's reads. */
function counting(store: StateStore) {
  const reads: string[][] = [];
  const wrapped: StateStore = {
    getMany: (keys) => {
      reads.push([...keys]);
      return store.getMany(keys);
    },
    putMany: (e) => store.putMany(e),
    deleteMany: (k) => store.deleteMany(k),
    entries: () => store.entries(),
    size: () => store.size(),
    close: () => store.close(),
  };
  return { wrapped, reads };
}

describe('CachedStore', () => {
  const S = 8;
  const rec = (i: number): StateRecord => makeRecord(i, S);

  it('serves hot keys from memory and loads the missing ones of a read in one backing call', async () => {
    const { wrapped, reads } = counting(new MemoryStateStore());
    const store = new CachedStore({ backing: wrapped, maxKeys: 3, stateSize: S });
    await store.putMany([0, 1, 2, 3, 4].map((i) => [`k${i}`, rec(i)] as const));
    // The last three written are held.
    expect(store.cachedKeys).toBe(3);
    const got = await store.getMany(['k4', 'k3', 'k0', 'k1', 'nobody']);
    expect(got.map((r) => r?.seq)).toEqual([5, 4, 1, 2, undefined]);
    expect(reads).toEqual([['k0', 'k1', 'nobody']]);
    expect(store.counts).toEqual({ hits: 2, misses: 3 });
    expect(store.cachedKeys).toBe(3);
    await store.close();
  });

  it('never holds more than maxKeys, and evicted keys read back exactly from the backing store', async () => {
    const store = new CachedStore({
      backing: new MemoryStateStore(),
      maxKeys: 10,
      stateSize: S,
      chunkSlots: 4,
    });
    for (let round = 0; round < 3; round++) {
      await store.putMany(
        Array.from({ length: 50 }, (_, i) => [`k${i}`, makeRecord(i + round * 100, S)] as const),
      );
      expect(store.cachedKeys).toBeLessThanOrEqual(10);
    }
    const got = await store.getMany(Array.from({ length: 50 }, (_, i) => `k${i}`));
    got.forEach((r, i) => {
      expectSameRecord(r!, makeRecord(i + 200, S));
    });
    expect(store.cachedKeys).toBe(10);
    await store.close();
  });

  it('forgets deleted keys in memory too', async () => {
    const store = new CachedStore({ backing: new MemoryStateStore(), maxKeys: 4, stateSize: S });
    await store.putMany([['a', rec(1)]]);
    await store.deleteMany(['a']);
    expect(await store.getMany(['a'])).toEqual([undefined]);
    expect(store.cachedKeys).toBe(0);
    await store.close();
  });

  it('passes through records of another shape without caching them', async () => {
    const store = new CachedStore({ backing: new MemoryStateStore(), maxKeys: 4, stateSize: S });
    await store.putMany([['odd', makeRecord(1, S + 1)]]);
    expectSameRecord((await store.getMany(['odd']))[0]!, makeRecord(1, S + 1));
    expect(store.cachedKeys).toBe(0);
    await store.close();
  });
});
