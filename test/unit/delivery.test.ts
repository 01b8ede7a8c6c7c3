import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lastPositions } from '../../src/engine/commitPositions.js';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import type { Envelope, Outcome } from '../../src/engine/types.js';
import type { Position } from '../../src/events/types.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import type { StateRecord, StateStore } from '../../src/state/types.js';
import { at, FILE, interleaved } from '../helpers/envelopes.js';
import { tinyLstm } from '../helpers/models.js';
import { sameBits } from '../state/records.js';

type PredictionOutcome = Extract<Outcome, { kind: 'prediction' }>;

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function lmdbPath(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cellstream-delivery-'));
  dirs.push(dir);
  return join(dir, 'state');
}

async function runAll(stepper: KeyedStepper, events: readonly Envelope[], batch: number): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (let i = 0; i < events.length; i += batch)
    out.push(...(await stepper.process(events.slice(i, i + batch))));
  return out;
}

async function snapshot(store: StateStore): Promise<Map<string, StateRecord>> {
  const out = new Map<string, StateRecord>();
  for await (const [k, r] of store.entries()) out.set(k, r);
  return out;
}

/** Records every store call in order, for checking when state is written. */
function recording(store: StateStore, log: string[]): StateStore {
  return {
    getMany: (keys) => store.getMany(keys),
    putMany: async (entries) => {
      log.push(`put ${entries.length}`);
      await store.putMany(entries);
    },
    deleteMany: async (keys) => {
      log.push(`delete ${keys.join(',')}`);
      await store.deleteMany(keys);
    },
    entries: () => store.entries(),
    size: () => store.size(),
    close: () => store.close(),
  };
}

describe('delivery rules', () => {
  it('never steps a redelivered event twice across a restart over LMDB, and repeats each key’s last prediction', async () => {
    const model = tinyLstm();
    const events = interleaved(90, 7);
    const referenceStore = new MemoryStateStore();
    const reference = new KeyedStepper({ model, store: referenceStore });
    const expected = (await runAll(reference, events, 13)) as PredictionOutcome[];

    const path = await lmdbPath();
    let store = await LmdbStore.open({ path });
    await runAll(new KeyedStepper({ model, store }), events.slice(0, 50), 9);
    await store.close();

    // The restart redelivers everything from line 1.
    store = await LmdbStore.open({ path });
    const again = await runAll(new KeyedStepper({ model, store }), events, 11);
    const lastOfKey = new Map<string, number>();
    events.slice(0, 50).forEach((e, i) => {
      lastOfKey.set(e.event!.key, i);
    });
    again.forEach((o, i) => {
      const key = events[i].event!.key;
      if (i >= 50) expect(o).toEqual(expected[i]);
      else if (lastOfKey.get(key) === i) expect(o).toEqual({ ...expected[i], redelivered: true });
      else expect(o).toEqual({ kind: 'duplicate', key, position: events[i].position });
    });

    const want = await snapshot(referenceStore);
    const got = await snapshot(store);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [k, r] of got) {
      expect(sameBits(r.state, want.get(k)!.state), `state of ${k}`).toBe(true);
      expect(r.seq).toBe(want.get(k)!.seq);
      expect(Array.from(r.lastOutput!)).toEqual(Array.from(want.get(k)!.lastOutput!));
    }
    await store.close();
  });

  it('hands a batch to emit before writing its state, and calls onCommittable after', async () => {
    const log: string[] = [];
    const store = recording(new MemoryStateStore(), log);
    const stepper = new KeyedStepper({
      model: tinyLstm(),
      store,
      emit: async (outcomes) => {
        log.push(`emit ${outcomes.length}`);
      },
      onCommittable: (positions) => {
        log.push(`commit ${JSON.stringify(positions)}`);
      },
    });
    await stepper.process([
      at(1, { key: 'a', ts: 1, features: [1, 2, 3] }),
      at(2, { key: 'b', ts: 2, features: [1, 2, 3] }),
      {
        event: { key: 'a', ts: 3, features: [1, 2, 3] },
        position: { kind: 'offset', topic: 't', partition: 0, offset: '7' },
      },
    ]);
    expect(log).toEqual([
      'emit 3',
      'put 2',
      `commit ${JSON.stringify([
        { kind: 'line', file: FILE, line: 2 },
        { kind: 'offset', topic: 't', partition: 0, offset: '7' },
      ])}`,
    ]);
  });

  it('writes nothing and commits nothing when emit fails', async () => {
    const store = new MemoryStateStore();
    const committed: unknown[] = [];
    const stepper = new KeyedStepper({
      model: tinyLstm(),
      store,
      emit: () => Promise.reject(new Error('sink down')),
      onCommittable: (p) => {
        committed.push(p);
      },
    });
    await expect(stepper.process([at(1, { key: 'a', ts: 1, features: [1, 2, 3] })])).rejects.toThrow(
      'sink down',
    );
    expect(await store.size()).toBe(0);
    expect(committed).toEqual([]);
  });

  it('repeats a prediction lost after its state was written, identical to the JSON first made', async () => {
    const store = new MemoryStateStore();
    const model = tinyLstm();
    const batch = [
      at(1, { key: 'a', ts: 10, features: [1, 2, 3], id: 'e1' }),
      at(2, { key: 'a', ts: 20, features: [3, 2, 1], id: 'e2' }),
    ];
    const lost = await new KeyedStepper({ model, store }).process(batch);
    const again = await new KeyedStepper({ model, store }).process(batch);
    expect(again[0]).toEqual({ kind: 'duplicate', key: 'a', position: batch[0].position });
    expect(again[1]).toEqual({ ...lost[1], redelivered: true });
    expect(JSON.stringify((again[1] as PredictionOutcome).prediction)).toBe(
      JSON.stringify((lost[1] as PredictionOutcome).prediction),
    );
    // Recognised by id too, whatever position it comes with.
    const byId = await new KeyedStepper({ model, store }).process([
      { event: { key: 'a', ts: 20, features: [3, 2, 1], id: 'e2' }, position: { kind: 'none' } },
    ]);
    expect((byId[0] as PredictionOutcome).prediction).toEqual((lost[1] as PredictionOutcome).prediction);
  });

  it('falls back to a duplicate outcome for a v1 record that kept no output', async () => {
    const store = new MemoryStateStore();
    const model = tinyLstm();
    const batch = [at(1, { key: 'a', ts: 10, features: [1, 2, 3] })];
    await new KeyedStepper({ model, store }).process(batch);
    const [record] = await store.getMany(['a']);
    const { lastOutput: _, ...v1 } = record!;
    await store.putMany([['a', v1]]);
    expect(await new KeyedStepper({ model, store }).process(batch)).toEqual([
      { kind: 'duplicate', key: 'a', position: batch[0].position },
    ]);
  });
});

describe('lastPositions', () => {
  it('gives the last position of each file and topic-partition, leaving out none', () => {
    const off = (partition: number, offset: string): Position => ({
      kind: 'offset',
      topic: 't',
      partition,
      offset,
    });
    expect(
      lastPositions([
        off(0, '9'),
        off(1, '3'),
        off(0, '10'),
        { kind: 'none' },
        { kind: 'line', file: 'a', line: 4 },
        off(0, '2'),
        { kind: 'line', file: 'a', line: 2 },
      ]),
    ).toEqual([off(0, '10'), off(1, '3'), { kind: 'line', file: 'a', line: 4 }]);
  });
});
