import { describe, expect, it } from 'vitest';
import type { StateError } from '../../src/errors.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import type { StateRecord } from '../../src/state/types.js';
import { describeStateStoreContract } from './storeContract.js';

describeStateStoreContract(
  'MemoryStateStore',
  async () => ({ store: new MemoryStateStore(), cleanup: async () => {} }),
  { durable: false },
);

function record(seq: number): StateRecord {
  return {
    seq,
    ts: seq * 1000,
    state: Float32Array.from([seq, -seq]),
    lastApplied: { kind: 'line', file: '/f', line: seq },
    fingerprint: 'fp',
  };
}

async function all(store: MemoryStateStore): Promise<[string, number][]> {
  const out: [string, number][] = [];
  for await (const [key, r] of store.entries()) out.push([key, r.seq]);
  return out;
}

async function rejection(p: unknown): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return { code: (err as StateError).code, message: (err as StateError).message };
  }
  throw new Error('expected a rejection');
}

describe('MemoryStateStore', () => {
  it('puts, gets, deletes and lists records', async () => {
    const store = new MemoryStateStore();
    await store.putMany([
      ['a', record(1)],
      ['b', record(2)],
    ]);
    const [a, missing, b] = await store.getMany(['a', 'x', 'b']);
    expect(a?.seq).toBe(1);
    expect(missing).toBeUndefined();
    expect(b?.state).toEqual(Float32Array.from([2, -2]));
    expect(await store.size()).toBe(2);
    await store.deleteMany(['a', 'nope']);
    expect(await all(store)).toEqual([['b', 2]]);
  });

  it('copies state vectors in and out, so callers may reuse their buffers', async () => {
    const store = new MemoryStateStore();
    const r = record(1);
    await store.putMany([['a', r]]);
    r.state[0] = 99;
    expect((await store.getMany(['a']))[0]?.state[0]).toBe(1);
  });

  it('refuses, writing nothing, a put that would exceed maxKeys', async () => {
    const store = new MemoryStateStore({ maxKeys: 2 });
    await store.putMany([['a', record(1)]]);
    expect(
      await rejection(
        store.putMany([
          ['b', record(2)],
          ['c', record(3)],
        ]),
      ),
    ).toEqual({
      code: 'STATE_FULL',
      message: 'the in-memory state store holds its maximum of 2 keys and cannot add 2 more',
    });
    expect(await all(store)).toEqual([['a', 1]]);
    // Updating held keys is always allowed.
    await store.putMany([
      ['a', record(5)],
      ['b', record(2)],
    ]);
    expect(await all(store)).toEqual([
      ['a', 5],
      ['b', 2],
    ]);
  });

  it('as an LRU cache, evicts the least recently used keys and reports each', async () => {
    const evicted: string[] = [];
    const store = new MemoryStateStore({
      maxKeys: 2,
      whenFull: 'evict-lru',
      onEvict: (k) => evicted.push(k),
    });
    await store.putMany([
      ['a', record(1)],
      ['b', record(2)],
    ]);
    await store.getMany(['a']); // b is now the least recently used
    await store.putMany([['c', record(3)]]);
    expect(evicted).toEqual(['b']);
    expect((await all(store)).map(([k]) => k).sort()).toEqual(['a', 'c']);
  });

  it('closes idempotently and refuses use afterwards', async () => {
    const store = new MemoryStateStore();
    await store.putMany([['a', record(1)]]);
    await store.close();
    await store.close();
    expect(await rejection(store.getMany(['a']))).toEqual({
      code: 'STATE_CLOSED',
      message: 'the in-memory state store is closed',
    });
    expect((await rejection(all(store))).code).toBe('STATE_CLOSED');
  });
});
