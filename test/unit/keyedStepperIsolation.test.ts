import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { afterEach, describe, expect, it } from 'vitest';
import { KeyedStepper, type KeyedStepperOptions } from '../../src/engine/keyedStepper.js';
import type { Envelope, Outcome } from '../../src/engine/types.js';
import { StateError } from '../../src/errors.js';
import type { Position, Prediction } from '../../src/events/types.js';
import { createState, modelFingerprint } from '../../src/model/index.js';
import { referenceKernel } from '../../src/model/kernels/index.js';
import { CachedStore } from '../../src/state/cachedStore.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import type { StateRecord } from '../../src/state/types.js';
import { at, rawAt } from '../helpers/envelopes.js';
import { tinyLstm } from '../helpers/models.js';

const dirs: string[] = [];
const stores: LmdbStore[] = [];

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function lmdb(): Promise<{ store: LmdbStore; path: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'cellstream-isolation-'));
  dirs.push(dir);
  const path = join(dir, 'state');
  const store = await LmdbStore.open({ path });
  stores.push(store);
  return { store, path };
}

function stepper(store: LmdbStore, over: Partial<KeyedStepperOptions> = {}): KeyedStepper {
  return new KeyedStepper({ model: tinyLstm(), store, kernel: referenceKernel, ...over });
}

function predictions(outcomes: readonly Outcome[]): Prediction[] {
  return outcomes.flatMap((o) => (o.kind === 'prediction' ? [o.prediction] : []));
}

/** The outcomes of the good keys' events alone, on a fresh store: what the bad events must not change. */
async function alone(events: readonly Envelope[]): Promise<Prediction[]> {
  const { store } = await lmdb();
  return predictions(await stepper(store).process(events));
}

const good = (line: number, key: string, ts = line) => at(line, { key, ts, features: [line / 10, -1, 0.5] });

function foreignRecord(): StateRecord {
  return {
    seq: 4,
    ts: 0,
    state: createState(tinyLstm()),
    lastApplied: { kind: 'none' },
    fingerprint: modelFingerprint(tinyLstm(99)),
  };
}

describe('KeyedStepper: per-event isolation on a real LMDB store', () => {
  it('rejects a key longer than the limit as that event alone, with EVENT_KEY_TOO_LONG', async () => {
    const { store } = await lmdb();
    const positions: Position[][] = [];
    const s = stepper(store, { onCommittable: (p) => void positions.push([...p]) });
    const longKey = 'x'.repeat(store.maxKeyBytes + 10);
    const batch = [
      good(1, 'a'),
      at(2, { key: longKey, ts: 2, features: [1, 2, 3] }),
      good(3, 'b'),
      rawAt(4, JSON.stringify({ key: 'é'.repeat(300), ts: 4, features: [1, 2, 3] })),
      good(5, 'a'),
    ];
    const outcomes = await s.process(batch);
    expect(outcomes.map((o) => o.kind)).toEqual([
      'prediction',
      'rejected',
      'prediction',
      'rejected',
      'prediction',
    ]);
    for (const i of [1, 3]) {
      const r = outcomes[i] as Extract<Outcome, { kind: 'rejected' }>;
      expect(r.code).toBe('EVENT_KEY_TOO_LONG');
      expect(r.reason).toMatch(/512/);
      expect(r.position).toEqual(batch[i].position);
    }
    const goodOnes = [batch[0], batch[2], batch[4]];
    expect(predictions(outcomes)).toEqual(await alone(goodOnes));
    expect((await store.getMany(['a', 'b'])).map((r) => r?.seq)).toEqual([2, 1]);
    expect(await store.size()).toBe(2);
    // The batch still completes: every position is committable.
    expect(positions).toEqual([[batch[4].position]]);
  });

  it('takes keys up to a configured limit, in UTF-8 bytes', async () => {
    const { store } = await lmdb();
    const s = stepper(store, { limits: { maxKeyBytes: 1000 } });
    const key600 = 'k'.repeat(600);
    const outcomes = await s.process([
      at(1, { key: key600, ts: 1, features: [1, 2, 3] }),
      at(2, { key: '€'.repeat(334), ts: 1, features: [1, 2, 3] }),
    ]);
    expect(outcomes.map((o) => o.kind)).toEqual(['prediction', 'rejected']);
    expect((await store.getMany([key600]))[0]?.seq).toBe(1);
  });

  it('refuses a limit the store cannot hold', async () => {
    const { store } = await lmdb();
    expect(() => stepper(store, { limits: { maxKeyBytes: store.maxKeyBytes } })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
  });

  it("rejects only the events of a key whose state another model wrote, under 'refuse'", async () => {
    const { store } = await lmdb();
    await store.putMany([['f', foreignRecord()]]);
    const s = stepper(store);
    const batch = [good(1, 'a'), good(2, 'f'), good(3, 'b'), good(4, 'f'), good(5, 'b')];
    const outcomes = await s.process(batch);
    expect(outcomes.map((o) => o.kind)).toEqual([
      'prediction',
      'rejected',
      'prediction',
      'rejected',
      'prediction',
    ]);
    const rejected = outcomes[1] as Extract<Outcome, { kind: 'rejected' }>;
    expect(rejected.code).toBe('STATE_MODEL_MISMATCH');
    expect(rejected.reason).toMatch(/^state of key 'f' was written by model /);
    expect(rejected.reason).toMatch(/onModelMismatch/);
    expect(predictions(outcomes)).toEqual(await alone([batch[0], batch[2], batch[4]]));
    // The foreign state is untouched, the others written.
    const [f] = await store.getMany(['f']);
    expect(f?.seq).toBe(4);
    expect(f?.fingerprint).toBe(foreignRecord().fingerprint);
    expect((await store.getMany(['a', 'b'])).map((r) => r?.seq)).toEqual([1, 2]);
  });

  it('rejects only the events of a key whose stored record does not decode (STATE_CORRUPT)', async () => {
    const { store, path } = await lmdb();
    await store.putMany([['a', { ...foreignRecord(), fingerprint: modelFingerprint(tinyLstm()) }]]);
    await store.close();
    const raw = open<Buffer, string>({ path, encoding: 'binary', noSubdir: false });
    await raw.put('bad', Buffer.from([1, 0, 0, 1]));
    await raw.close();
    const again = await LmdbStore.open({ path });
    stores.push(again);
    const s = stepper(again);
    const outcomes = await s.process([good(1, 'bad'), good(2, 'a'), good(3, 'b'), good(4, 'bad')]);
    expect(outcomes.map((o) => o.kind)).toEqual(['rejected', 'prediction', 'prediction', 'rejected']);
    expect(outcomes[0]).toMatchObject({ code: 'STATE_CORRUPT', reason: expect.stringContaining("'bad'") });
    // 'a' continued from its stored state (seq 4), 'b' started afresh.
    expect(predictions(outcomes).map((p) => [p.key, p.seq])).toEqual([
      ['a', 5],
      ['b', 1],
    ]);
  });

  it('rejects only the events of a key whose stored state has the wrong size (STATE_CORRUPT)', async () => {
    const { store } = await lmdb();
    await store.putMany([
      [
        'short',
        { ...foreignRecord(), state: new Float32Array(3), fingerprint: modelFingerprint(tinyLstm()) },
      ],
    ]);
    const outcomes = await stepper(store).process([good(1, 'short'), good(2, 'a')]);
    expect(outcomes.map((o) => o.kind)).toEqual(['rejected', 'prediction']);
    expect(outcomes[0]).toMatchObject({ code: 'STATE_CORRUPT' });
  });

  it('rejects the events of a key the store says it can never hold, with the store’s code', async () => {
    const { store } = await lmdb();
    // As the changelog store refuses its reserved prefix: the engine asks before stepping.
    const own = store.keyError.bind(store);
    store.keyError = (key: string) =>
      key.startsWith('#') ? new StateError('STATE_KEY_RESERVED', `key '${key}' is reserved`) : own(key);
    const outcomes = await stepper(store).process([good(1, '#mine'), good(2, 'a'), good(3, '#mine')]);
    expect(outcomes.map((o) => (o.kind === 'rejected' ? o.code : o.kind))).toEqual([
      'STATE_KEY_RESERVED',
      'prediction',
      'STATE_KEY_RESERVED',
    ]);
    expect(await store.size()).toBe(1);
    // LMDB's own answer: only keys past its index limit.
    expect(own('k'.repeat(store.maxKeyBytes - 1))).toBeUndefined();
    expect(own('k'.repeat(store.maxKeyBytes + 1))?.code).toBe('STATE_KEY_TOO_LONG');
  });

  it('still fails the whole batch, writing nothing, when the store as a whole fails', async () => {
    const { store } = await lmdb();
    const s = stepper(store);
    await s.process([good(1, 'a')]);
    await store.close();
    const err = (await s.process([good(2, 'a'), good(3, 'b')]).catch((e: unknown) => e)) as StateError;
    expect(err.code).toBe('STATE_CLOSED');
  });
});

describe('KeyedStepper: a store with no room for new keys (STATE_FULL)', () => {
  const codes = (outcomes: readonly Outcome[]) =>
    outcomes.map((o) => (o.kind === 'rejected' ? o.code : o.kind));

  it('refuses only the events of new keys beyond the cap; keys held and keys that fit go on', async () => {
    const store = new MemoryStateStore({ maxKeys: 3 });
    const s = new KeyedStepper({ model: tinyLstm(), store, kernel: referenceKernel });
    await s.process([good(1, 'a'), good(2, 'b')]);
    const outcomes = await s.process([
      good(3, 'c'),
      good(4, 'a'),
      good(5, 'd'),
      good(6, 'b'),
      good(7, 'c'),
      good(8, 'd'),
    ]);
    // 'c' takes the last free key; 'd' finds none, and each of its events is its own rejection.
    expect(codes(outcomes)).toEqual([
      'prediction',
      'prediction',
      'STATE_FULL',
      'prediction',
      'prediction',
      'STATE_FULL',
    ]);
    expect(outcomes[2]).toMatchObject({ reason: expect.stringContaining("'d'") });
    expect(predictions(outcomes).map((p) => [p.key, p.seq])).toEqual([
      ['c', 1],
      ['a', 2],
      ['b', 2],
      ['c', 2],
    ]);
    expect(await store.size()).toBe(3);
    // Still full: the held keys go on, a new key is refused again.
    expect(codes(await s.process([good(9, 'e'), good(10, 'a')]))).toEqual(['STATE_FULL', 'prediction']);
  });

  it('counts only new keys that are written: one whose events are all rejected takes no room', async () => {
    const store = new MemoryStateStore({ maxKeys: 2 });
    const s = new KeyedStepper({ model: tinyLstm(), store, kernel: referenceKernel });
    await s.process([good(1, 'a')]);
    const outcomes = await s.process([
      at(2, { key: 'x', ts: 2, features: [1, 2] }),
      good(3, 'y'),
      good(4, 'z'),
    ]);
    expect(codes(outcomes)).toEqual(['EVENT_WRONG_SIZE', 'prediction', 'STATE_FULL']);
  });

  it('lets a store that evicts take as many new keys as one write holds, and a cache in front of LMDB any', async () => {
    const lru = new MemoryStateStore({ maxKeys: 2, whenFull: 'evict-lru' });
    const one = new KeyedStepper({ model: tinyLstm(), store: lru, kernel: referenceKernel });
    expect(codes(await one.process([good(1, 'a'), good(2, 'b')]))).toEqual(['prediction', 'prediction']);
    expect(codes(await one.process([good(3, 'c'), good(4, 'd'), good(5, 'e')]))).toEqual([
      'prediction',
      'prediction',
      'STATE_FULL',
    ]);
    const { store } = await lmdb();
    const cached = new CachedStore({ backing: store, maxKeys: 1, stateSize: createState(tinyLstm()).length });
    const two = new KeyedStepper({ model: tinyLstm(), store: cached, kernel: referenceKernel });
    expect(codes(await two.process([good(1, 'a'), good(2, 'b'), good(3, 'c')]))).toEqual([
      'prediction',
      'prediction',
      'prediction',
    ]);
    expect(await store.size()).toBe(3);
  });
});
