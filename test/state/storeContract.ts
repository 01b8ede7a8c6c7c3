import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StateError } from '../../src/errors.js';
import type { ReadInto, StateRecord, StateStore } from '../../src/state/types.js';
import { awkwardState, EVERY_POSITION, expectSameRecord, makeRecord, sameBits } from './records.js';

export interface StoreUnderTest {
  store: StateStore;
  /** For durable stores: opens the same storage again (after `store` was closed). */
  reopen?: () => Promise<StateStore>;
  /** Removes whatever the store left behind (files, directories). */
  cleanup: () => Promise<void>;
}

/**
 * The behaviour every `StateStore` must have, run against a fresh store per test. Each store's
 * test file is one call: `describeStateStoreContract('lmdb', async () => ({ store, reopen, cleanup }), { durable: true })`.
 */
export function describeStateStoreContract(
  name: string,
  factory: () => Promise<StoreUnderTest>,
  options: { durable: boolean },
): void {
  describe(`StateStore contract: ${name}`, () => {
    let sut: StoreUnderTest;
    const extra: StateStore[] = [];

    beforeEach(async () => {
      sut = await factory();
    });

    afterEach(async () => {
      for (const s of extra.splice(0)) await s.close();
      await sut.store.close();
      await sut.cleanup();
    });

    async function reopened(): Promise<StateStore> {
      await sut.store.close();
      const again = await sut.reopen!();
      extra.push(again);
      return again;
    }

    async function all(store: StateStore): Promise<[string, StateRecord][]> {
      const out: [string, StateRecord][] = [];
      for await (const entry of store.entries()) out.push(entry);
      return out;
    }

    it('gives undefined for a key it has never seen', async () => {
      expect(await sut.store.getMany(['nobody'])).toEqual([undefined]);
      expect(await sut.store.getMany([])).toEqual([]);
      expect(await sut.store.size()).toBe(0);
    });

    it('returns putMany records from getMany in the order asked, misses as undefined', async () => {
      const a = makeRecord(1);
      const b = makeRecord(2);
      await sut.store.putMany([
        ['a', a],
        ['b', b],
      ]);
      const got = await sut.store.getMany(['b', 'missing', 'a', 'b']);
      expect(got.map((r) => r?.seq)).toEqual([3, undefined, 2, 3]);
      expectSameRecord(got[0]!, b);
      expectSameRecord(got[2]!, a);
    });

    it('overwrites a key with the latest record', async () => {
      await sut.store.putMany([['k', makeRecord(1)]]);
      await sut.store.putMany([['k', makeRecord(7, 8, { lastId: 'e-7' })]]);
      const [got] = await sut.store.getMany(['k']);
      expectSameRecord(got!, makeRecord(7, 8, { lastId: 'e-7' }));
      expect(await sut.store.size()).toBe(1);
    });

    it('keeps the last of duplicate keys within one batch', async () => {
      await sut.store.putMany([
        ['k', makeRecord(1)],
        ['k', makeRecord(2)],
      ]);
      expect((await sut.store.getMany(['k']))[0]!.seq).toBe(3);
      expect(await sut.store.size()).toBe(1);
    });

    it('deletes the given keys, ignoring ones it does not have', async () => {
      await sut.store.putMany([
        ['a', makeRecord(1)],
        ['b', makeRecord(2)],
        ['c', makeRecord(3)],
      ]);
      await sut.store.deleteMany(['a', 'c', 'never']);
      expect((await sut.store.getMany(['a', 'b', 'c'])).map((r) => r?.seq)).toEqual([
        undefined,
        3,
        undefined,
      ]);
      expect(await sut.store.size()).toBe(1);
      await sut.store.deleteMany([]);
      expect(await sut.store.size()).toBe(1);
    });

    it('iterates every entry exactly once and counts them', async () => {
      const keys = Array.from({ length: 250 }, (_, i) => `key-${i}`);
      await sut.store.putMany(keys.map((k, i) => [k, makeRecord(i)] as const));
      const seen = await all(sut.store);
      expect(seen.map(([k]) => k).sort()).toEqual([...keys].sort());
      for (const [k, r] of seen) expectSameRecord(r, makeRecord(keys.indexOf(k)));
      expect(await sut.store.size()).toBe(250);
    });

    it('keeps awkward keys apart and returns them unchanged', async () => {
      const keys = [
        '',
        '0',
        '42',
        'a',
        'A',
        'a ',
        '\u0000',
        '\u0001x',
        'é',
        'e\u0301',
        '🙂',
        'k'.repeat(600),
      ];
      await sut.store.putMany(keys.map((k, i) => [k, makeRecord(i)] as const));
      const got = await sut.store.getMany(keys);
      expect(got.map((r) => r?.seq)).toEqual(keys.map((_, i) => i + 1));
      expect((await all(sut.store)).map(([k]) => k).sort()).toEqual([...keys].sort());
    });

    it('round-trips every Position kind with bit-identical state', async () => {
      const entries = EVERY_POSITION.map(
        (lastApplied, i) =>
          [
            `p${i}`,
            makeRecord(i, 128, { lastApplied, state: awkwardState(128, i), lastId: `id-${i}` }),
          ] as const,
      );
      await sut.store.putMany(entries);
      const got = await sut.store.getMany(entries.map(([k]) => k));
      for (const [i, [, r]] of entries.entries()) expectSameRecord(got[i]!, r);
    });

    it('round-trips the v2 fields lastOutput and updatedAt, and their absence', async () => {
      const full = makeRecord(1, 128, { lastOutput: awkwardState(2, 3), updatedAt: 1_732_700_000_999 });
      await sut.store.putMany([
        ['full', full],
        ['plain', makeRecord(2, 128)],
      ]);
      const [a, b] = await sut.store.getMany(['full', 'plain']);
      expectSameRecord(a!, full);
      expectSameRecord(b!, makeRecord(2, 128));
      full.lastOutput![0] = 99;
      expect((await sut.store.getMany(['full']))[0]!.lastOutput![0]).not.toBe(99);
    });

    it('round-trips the v3 field earlierIds (the id window), and its absence', async () => {
      const ids = makeRecord(1, 16, { lastId: 'e-5', earlierIds: ['e-2', 'e-3', 'ü-4'] });
      await sut.store.putMany([
        ['ids', ids],
        ['plain', makeRecord(2, 16)],
      ]);
      const [a, b] = await sut.store.getMany(['ids', 'plain']);
      expectSameRecord(a!, ids);
      expectSameRecord(b!, makeRecord(2, 16));
      // Overwritten with a shorter window, then with none.
      await sut.store.putMany([['ids', makeRecord(3, 16, { earlierIds: ['e-3'] })]]);
      expectSameRecord((await sut.store.getMany(['ids']))[0]!, makeRecord(3, 16, { earlierIds: ['e-3'] }));
      await sut.store.putMany([['ids', makeRecord(4, 16)]]);
      expect('earlierIds' in (await sut.store.getMany(['ids']))[0]!).toBe(false);
      if (options.durable) {
        await sut.store.putMany([['ids', ids]]);
        expectSameRecord((await (await reopened()).getMany(['ids']))[0]!, ids);
      }
    });

    it('round-trips the v4 field warmedFrom, and its absence', async () => {
      const warmed = makeRecord(5, 16, { lastId: 'e-5', warmedFrom: 42, lastOutput: awkwardState(2, 1) });
      await sut.store.putMany([['warm', warmed]]);
      expectSameRecord((await sut.store.getMany(['warm']))[0]!, warmed);
      const into = { states: [new Float32Array(16)], outputs: [new Float32Array(2)] };
      expect((await sut.store.getMany(['warm'], into))[0]!.warmedFrom).toBe(42);
      await sut.store.putMany([['warm', makeRecord(6, 16)]]);
      expect('warmedFrom' in (await sut.store.getMany(['warm']))[0]!).toBe(false);
      if (options.durable) {
        await sut.store.putMany([['warm', warmed]]);
        expectSameRecord((await (await reopened()).getMany(['warm']))[0]!, warmed);
      }
    });

    it('does not share memory with the records it was given', async () => {
      const record = makeRecord(1, 4);
      await sut.store.putMany([['k', record]]);
      record.state[0] = 99;
      const [first] = await sut.store.getMany(['k']);
      expect(first!.state[0]).not.toBe(99);
      first!.state[1] = 99;
      expect((await sut.store.getMany(['k']))[0]!.state[1]).not.toBe(99);
    });

    /**
     * Arrays for `n` keys of `S` state and `O` output floats, filled with a marker value: views of
     * one buffer each, as the engine passes them.
     */
    function buffers(n: number, S: number, O: number): ReadInto {
      const states = new Float32Array(n * S).fill(-7);
      const outputs = new Float32Array(n * O).fill(-7);
      return {
        states: Array.from({ length: n }, (_, i) => states.subarray(i * S, (i + 1) * S)),
        outputs: Array.from({ length: n }, (_, i) => outputs.subarray(i * O, (i + 1) * O)),
      };
    }

    it('reads states and last outputs into the arrays given for each key', async () => {
      const a = makeRecord(1, 16, { lastOutput: awkwardState(3, 1), updatedAt: 5 });
      const b = makeRecord(2, 16, { state: awkwardState(16, 2), lastId: 'e-2' });
      await sut.store.putMany([
        ['a', a],
        ['b', b],
      ]);
      const into = buffers(4, 16, 3);
      const got = await sut.store.getMany(['b', 'missing', 'a', 'b'], into);
      expect(got[1]).toBeUndefined();
      for (const [i, want] of [
        [0, b],
        [2, a],
        [3, b],
      ] as const) {
        expectSameRecord(got[i]!, want);
        expect(got[i]!.state, `state of key ${i} in its array`).toBe(into.states[i]);
      }
      expect(got[2]!.lastOutput).toBe(into.outputs[2]);
      expect(sameBits(into.outputs[2], a.lastOutput!)).toBe(true);
      // The caller owns the arrays: writing them changes nothing stored.
      for (const s of into.states) s.fill(0);
      for (const o of into.outputs) o.fill(0);
      expectSameRecord((await sut.store.getMany(['a']))[0]!, a);
    });

    it('gives records of another size than the arrays given arrays of their own', async () => {
      const small = makeRecord(1, 4, { lastOutput: awkwardState(2, 1) });
      const fits = makeRecord(2, 8, { lastOutput: awkwardState(5, 2) });
      await sut.store.putMany([
        ['small', small],
        ['fits', fits],
      ]);
      const into = buffers(2, 8, 2);
      const [s, f] = await sut.store.getMany(['small', 'fits'], into);
      expectSameRecord(s!, small);
      expectSameRecord(f!, fits);
      expect(s!.state.buffer).not.toBe(into.states[0].buffer);
      expect(s!.lastOutput).toBe(into.outputs[0]);
      expect(f!.state).toBe(into.states[1]);
      expect(f!.lastOutput!.buffer).not.toBe(into.outputs[1].buffer);
      // Nothing was written to the arrays of records that did not fit.
      expect([...into.states[0]]).toEqual(new Array(8).fill(-7));
      expect([...into.outputs[1]]).toEqual([-7, -7]);
      f!.lastOutput![0] = 99;
      expect((await sut.store.getMany(['fits']))[0]!.lastOutput![0]).not.toBe(99);
    });

    it('iterates into the arrays given, each entry overwriting the one before', async () => {
      const fits = Array.from({ length: 3 }, (_, i) => makeRecord(i, 8, { lastOutput: awkwardState(2, i) }));
      const other = makeRecord(9, 4, { lastOutput: awkwardState(3, 9) });
      await sut.store.putMany([...fits.map((r, i) => [`k${i}`, r] as const), ['other', other]]);
      const into = buffers(1, 8, 2);
      let seen = 0;
      for await (const [key, record] of sut.store.entries(into)) {
        if (key === 'other') {
          // Seen before the next entry overwrites anything: arrays of its own, the buffers left alone.
          expectSameRecord(record, other);
          expect(record.state.buffer).not.toBe(into.states[0].buffer);
          expect(record.lastOutput!.buffer).not.toBe(into.outputs[0].buffer);
        } else {
          const want = fits[Number(key.slice(1))];
          expectSameRecord(record, want);
          expect(record.state).toBe(into.states[0]);
          expect(record.lastOutput).toBe(into.outputs[0]);
        }
        seen++;
      }
      expect(seen).toBe(4);
      // The caller's arrays are its own: writing them changes nothing stored.
      into.states[0].fill(0);
      expectSameRecord((await sut.store.getMany(['k2']))[0]!, fits[2]);
    });

    it('rejects fewer arrays than keys asked with a RangeError', async () => {
      await sut.store.putMany([['k', makeRecord(1, 8)]]);
      const err = await settled(() => sut.store.getMany(['k', 'k'], buffers(1, 8, 0)));
      expect(err).toBeInstanceOf(RangeError);
      expect((err as Error).message).toMatch(/too few for 2 keys/);
    });

    it('takes a batch of 10k records', async () => {
      const entries = Array.from({ length: 10_000 }, (_, i) => [`k${i}`, makeRecord(i, 128)] as const);
      await sut.store.putMany(entries);
      expect(await sut.store.size()).toBe(10_000);
      const probe = [0, 1, 4999, 9999, 10_000].map((i) => `k${i}`);
      expect((await sut.store.getMany(probe)).map((r) => r?.seq)).toEqual([1, 2, 5000, 10_000, undefined]);
      let n = 0;
      for await (const _ of sut.store.entries()) n++;
      expect(n).toBe(10_000);
    });

    it('can be closed twice', async () => {
      await sut.store.close();
      await sut.store.close();
      await Promise.all([sut.store.close(), sut.store.close()]);
    });

    it('throws STATE_CLOSED on any use after close', async () => {
      await sut.store.putMany([['k', makeRecord(1)]]);
      await sut.store.close();
      await expectClosed(() => sut.store.getMany(['k']));
      await expectClosed(() => sut.store.putMany([['k', makeRecord(2)]]));
      await expectClosed(() => sut.store.deleteMany(['k']));
      await expectClosed(() => sut.store.size());
      await expectClosed(async () => {
        for await (const _ of sut.store.entries()) {
          // nothing: the first step must throw
        }
      });
    });

    it('stops an iteration that outlives close with STATE_CLOSED', async () => {
      await sut.store.putMany([
        ['a', makeRecord(1)],
        ['b', makeRecord(2)],
      ]);
      const it = sut.store.entries()[Symbol.asyncIterator]();
      expect((await it.next()).done).toBe(false);
      await sut.store.close();
      await expectClosed(() => it.next());
    });

    it('finishes writes already started when closed', async () => {
      const writing = sut.store.putMany([['k', makeRecord(1)]]);
      await sut.store.close();
      await writing;
      if (sut.reopen) {
        const again = await sut.reopen();
        extra.push(again);
        expect((await again.getMany(['k']))[0]?.seq).toBe(2);
      }
    });

    // Registered only for durable stores, so a volatile store's run lists no skipped test.
    const durableIt = options.durable ? it : () => {};
    durableIt('sees after reopening exactly what was committed before closing', async () => {
      expect(sut.reopen, 'a durable store under test must provide reopen()').toBeDefined();
      await sut.store.putMany(Array.from({ length: 100 }, (_, i) => [`k${i}`, makeRecord(i, 16)] as const));
      await sut.store.deleteMany(['k0', 'k99']);
      await sut.store.putMany([['k1', makeRecord(1000, 16, { lastApplied: EVERY_POSITION[7] })]]);
      const again = await reopened();
      expect(await again.size()).toBe(98);
      const got = await again.getMany(['k0', 'k1', 'k2', 'k99']);
      expect(got[0]).toBeUndefined();
      expectSameRecord(got[1]!, makeRecord(1000, 16, { lastApplied: EVERY_POSITION[7] }));
      expectSameRecord(got[2]!, makeRecord(2, 16));
      expect(got[3]).toBeUndefined();
      const into = buffers(2, 16, 0);
      const [k2, k1] = await again.getMany(['k2', 'k1'], into);
      expectSameRecord(k2!, makeRecord(2, 16));
      expectSameRecord(k1!, makeRecord(1000, 16, { lastApplied: EVERY_POSITION[7] }));
      expect(k1!.state).toBe(into.states[1]);
    });
  });
}

async function expectClosed(fn: () => unknown): Promise<void> {
  const err = await settled(fn);
  expect(err).toBeInstanceOf(StateError);
  expect((err as StateError).code).toBe('STATE_CLOSED');
}

/**
 * What `fn`'s answer failed with (undefined when it did not). A store may answer at once
 * (StoreAnswer), but a failure must be a rejected promise: a synchronous throw fails the test.
 */
async function settled(fn: () => unknown): Promise<unknown> {
  let answer: unknown;
  expect(() => {
    answer = fn();
  }, 'a store fails by rejecting, never by throwing').not.toThrow();
  return Promise.resolve(answer).then(
    () => undefined,
    (e: unknown) => e,
  );
}
