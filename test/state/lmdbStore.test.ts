import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterEach, describe, expect, it } from 'vitest';
import { StateError } from '../../src/errors.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { encodeStateRecord } from '../../src/state/recordCodec.js';
import type { StateStore } from '../../src/state/types.js';
import { expectSameRecord, makeRecord } from './records.js';
import { describeStateStoreContract } from './storeContract.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'cellstream-lmdb-'));
}

describeStateStoreContract(
  'LmdbStore',
  async () => {
    const dir = await tempDir();
    const path = join(dir, 'state');
    return {
      store: await LmdbStore.open({ path }),
      reopen: () => LmdbStore.open({ path }),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
  { durable: true },
);

describeStateStoreContract(
  'LmdbStore with overlappingSync',
  async () => {
    const dir = await tempDir();
    const path = join(dir, 'state');
    return {
      store: await LmdbStore.open({ path, overlappingSync: true }),
      reopen: () => LmdbStore.open({ path, overlappingSync: true }),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
  { durable: true },
);

describe('LmdbStore', () => {
  const dirs: string[] = [];
  const stores: LmdbStore[] = [];
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  async function fresh(sub = 'state'): Promise<{ store: LmdbStore; path: string }> {
    const dir = await tempDir();
    dirs.push(dir);
    const path = join(dir, sub);
    const store = await LmdbStore.open({ path });
    stores.push(store);
    return { store, path };
  }

  it('creates missing directories, even with a dot in the name', async () => {
    const { path } = await fresh('a/b/state.v1');
    expect(existsSync(join(path, 'data.mdb'))).toBe(true);
  });

  it('refuses a whole batch holding a key too long to index, writing none of it', async () => {
    const { store } = await fresh();
    const long = 'x'.repeat(store.maxKeyBytes + 1);
    const err = await store
      .putMany([
        ['ok', makeRecord(1)],
        [long, makeRecord(2)],
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateError);
    expect((err as StateError).code).toBe('STATE_KEY_TOO_LONG');
    expect(await store.size()).toBe(0);
    // Such a key cannot be stored, so it is simply absent.
    expect(await store.getMany([long, 'ok'])).toEqual([undefined, undefined]);
    await store.deleteMany([long]);
    const longest = 'y'.repeat(store.maxKeyBytes);
    await store.putMany([[longest, makeRecord(3)]]);
    expect((await store.getMany([longest]))[0]?.seq).toBe(4);
  });

  it('reports a record it cannot decode as STATE_CORRUPT naming the key', async () => {
    const { store, path } = await fresh();
    await store.putMany([['good', makeRecord(1)]]);
    await store.close();
    const raw = open<Buffer, string>({ path, encoding: 'binary', noSubdir: false });
    await raw.put('bad', Buffer.from([1, 0, 0, 1]));
    await raw.close();
    const again = await LmdbStore.open({ path });
    stores.push(again);
    const err = await again.getMany(['good', 'bad']).catch((e: unknown) => e);
    expect((err as StateError).code).toBe('STATE_CORRUPT');
    expect((err as StateError).message).toContain("'bad'");
    expectSameRecord((await again.getMany(['good']))[0]!, makeRecord(1));
  });

  it('has no key cap and outgrows its initial mapSize: it is full only when its disk is', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const store = await LmdbStore.open({ path: join(dir, 'state'), mapSize: 64 * 1024 });
    stores.push(store);
    expect((store as StateStore).freeKeys).toBeUndefined();
    // 4000 records of 1 KB of state: about 4 MB, 64 times the map it was opened with.
    for (let b = 0; b < 40; b++) {
      await store.putMany(Array.from({ length: 100 }, (_, i) => [`k${b}-${i}`, makeRecord(i, 256)] as const));
    }
    expect(await store.size()).toBe(4000);
    expect((await store.getMany(['k39-99']))[0]?.state.length).toBe(256);
  });

  it('stores exactly the codec bytes under the entity key', async () => {
    const { store, path } = await fresh();
    const record = makeRecord(5, 128, { lastId: 'e-5' });
    await store.putMany([['customer-5', record]]);
    await store.close();
    const raw = open<Buffer, string>({ path, encoding: 'binary', noSubdir: false });
    expect(Buffer.compare(raw.get('customer-5')!, encodeStateRecord(record))).toBe(0);
    await raw.close();
  });
});
