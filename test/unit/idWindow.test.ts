import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import type { Envelope, Outcome } from '../../src/engine/types.js';
import type { Event } from '../../src/events/types.js';
import { referenceKernel } from '../../src/model/kernels/index.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { tinyLstm } from '../helpers/models.js';

const dirs: string[] = [];
const stores: LmdbStore[] = [];

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function statePath(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cellstream-ids-'));
  dirs.push(dir);
  return join(dir, 'state');
}

async function openStepper(path: string, idWindow?: number) {
  const store = await LmdbStore.open({ path });
  stores.push(store);
  const stepper = new KeyedStepper({
    model: tinyLstm(),
    store,
    kernel: referenceKernel,
    ...(idWindow === undefined ? {} : { idWindow }),
  });
  return { store, stepper };
}

/** Live-source envelopes: no position, so only the id can tell a resend. */
const live = (event: Event): Envelope => ({ event, position: { kind: 'none' } });
const ev = (id: string | undefined, ts: number, key = 'k'): Envelope =>
  live({ key, ts, features: [ts / 10, 0.5, -1], ...(id === undefined ? {} : { id }) });

const kinds = (outcomes: readonly Outcome[]) =>
  outcomes.map((o) => (o.kind === 'prediction' && o.redelivered ? 'redelivered' : o.kind));

describe('idempotency ids: the last N applied ids of a key', () => {
  it('answers a resend of e1–e3 after all three were applied as duplicates, also after a restart', async () => {
    const path = await statePath();
    const first = await openStepper(path);
    const sent = [ev('e1', 1), ev('e2', 2), ev('e3', 3)];
    const applied = await first.stepper.process(sent);
    expect(kinds(applied)).toEqual(['prediction', 'prediction', 'prediction']);
    // Separate batches too: the window lives in the stored record, not in the batch.
    expect(kinds(await first.stepper.process([ev('e4', 4)]))).toEqual(['prediction']);
    await first.stepper.close();
    await first.store.close();

    const again = await openStepper(path);
    const before = (await again.store.getMany(['k']))[0]!;
    expect(before.seq).toBe(4);
    const resent = await again.stepper.process([ev('e1', 1), ev('e2', 2), ev('e3', 3), ev('e4', 4)]);
    expect(kinds(resent)).toEqual(['duplicate', 'duplicate', 'duplicate', 'redelivered']);
    // The last one's prediction is repeated exactly; the state was not stepped.
    expect(resent[3]).toMatchObject({ kind: 'prediction', prediction: { seq: 4 } });
    const after = (await again.store.getMany(['k']))[0]!;
    expect(after.seq).toBe(4);
    expect(Array.from(after.state)).toEqual(Array.from(before.state));
    // A new id is stepped, and resends within one batch are recognised too.
    const fresh = await again.stepper.process([ev('e5', 5), ev('e2', 2), ev('e5', 5)]);
    expect(kinds(fresh)).toEqual(['prediction', 'duplicate', 'redelivered']);
  });

  it('remembers exactly idWindow ids: the oldest leave as new ones are applied', async () => {
    const { stepper, store } = await openStepper(await statePath(), 3);
    await stepper.process([ev('a', 1), ev('b', 2), ev('c', 3), ev('d', 4)]);
    const [record] = await store.getMany(['k']);
    expect(record?.lastId).toBe('d');
    expect(record?.earlierIds).toEqual(['b', 'c']);
    // 'a' fell out of the window of 3: it is a new event again, as documented.
    expect(kinds(await stepper.process([ev('b', 2), ev('c', 3), ev('a', 5)]))).toEqual([
      'duplicate',
      'duplicate',
      'prediction',
    ]);
  });

  it('keeps the ids across events without an id and across a reset', async () => {
    const { stepper, store } = await openStepper(await statePath());
    await stepper.process([ev('x', 1), ev(undefined, 2)]);
    await stepper.process([live({ key: 'k', ts: 3, features: [1, 1, 1], reset: true })]);
    const [record] = await store.getMany(['k']);
    expect(record?.lastId).toBeUndefined();
    expect(record?.earlierIds).toEqual(['x']);
    expect(kinds(await stepper.process([ev('x', 1)]))).toEqual(['duplicate']);
  });

  it('keeps each key its own window', async () => {
    const { stepper } = await openStepper(await statePath());
    await stepper.process([ev('same', 1, 'a'), ev('other', 2, 'a')]);
    expect(kinds(await stepper.process([ev('same', 1, 'b'), ev('same', 1, 'a')]))).toEqual([
      'prediction',
      'duplicate',
    ]);
  });

  it('refuses a window outside 1..1024', async () => {
    const path = await statePath();
    await expect(openStepper(path, 0)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(openStepper(path, 1025)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });
});
