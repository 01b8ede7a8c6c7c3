import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatMs } from '../../src/engine/expiry.js';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import type { Outcome } from '../../src/engine/types.js';
import type { Event } from '../../src/events/types.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import { parseDuration } from '../../src/time/duration.js';
import { at } from '../helpers/envelopes.js';
import { tempDir } from '../helpers/fixtures.js';
import { tinyLstm } from '../helpers/models.js';

const DAY = 86_400_000;
const TTL = 30 * DAY;

function ev(key: string, ts: number): Event {
  return { key, ts, features: [0.5, -0.5, 1] };
}

function setup(clock: 'event' | 'processing', maxPerSweep?: number, sweepPerEvent?: number) {
  const store = new MemoryStateStore();
  const clockState = { now: 0 };
  const emitted: Outcome[][] = [];
  const stepper = new KeyedStepper({
    model: tinyLstm(),
    store,
    ttl: {
      ttlMs: TTL,
      clock,
      ...(maxPerSweep === undefined ? {} : { maxPerSweep }),
      ...(sweepPerEvent === undefined ? {} : { sweepPerEvent }),
    },
    now: () => clockState.now,
    emit: (outcomes) => {
      emitted.push([...outcomes]);
    },
  });
  let line = 0;
  const send = (...events: Event[]) => stepper.process(events.map((e) => at(++line, e)));
  return { store, stepper, clock: clockState, send, emitted };
}

const kinds = (outcomes: Outcome[]) => outcomes.map((o) => o.kind);

describe('TTL in event time', () => {
  it('expires idle keys once the newest event time passes their last one by the TTL, reporting each', async () => {
    const { store, stepper, send } = setup('event');
    await send(ev('a', 0), ev('a', DAY), ev('b', 0));
    expect(kinds(await send(ev('c', TTL)))).toEqual(['prediction']);
    const out = await send(ev('c', TTL + DAY));
    expect(out.filter((o) => o.kind === 'expired')).toEqual([
      expect.objectContaining({ kind: 'expired', key: 'b', lastTs: 0, seq: 1 }),
    ]);
    const later = await send(ev('c', TTL + 2 * DAY + 1));
    expect(later.filter((o) => o.kind === 'expired')).toEqual([
      {
        kind: 'expired',
        key: 'a',
        lastTs: DAY,
        seq: 2,
        reason: expect.stringMatching(/^idle for 31d of event time .*TTL of 30d$/),
      },
    ]);
    expect(await store.getMany(['a', 'b', 'c'])).toEqual([undefined, undefined, expect.anything()]);
    expect(stepper.counts.expired).toBe(2);
    // An expired key starts again at seq 1.
    const back = await send(ev('a', TTL + 3 * DAY));
    expect(back[0]).toMatchObject({ kind: 'prediction', prediction: { key: 'a', seq: 1 } });
  });

  it('expires a key on its own next event when that comes more than the TTL later, whatever the batching', async () => {
    const { send, stepper } = setup('event', 0);
    const first = await send(ev('a', 0), ev('a', 1));
    const out = await send(ev('a', TTL + 2), ev('a', TTL + 3));
    expect(kinds(out)).toEqual(['expired', 'prediction', 'prediction']);
    expect(out[0]).toMatchObject({ key: 'a', lastTs: 1, seq: 2 });
    expect(out.slice(1).map((o) => (o.kind === 'prediction' ? o.prediction.seq : 0))).toEqual([1, 2]);
    // Fresh state: the same features give the first-ever output again.
    expect(out[1].kind === 'prediction' && out[1].prediction.output).toEqual(
      first[0].kind === 'prediction' && first[0].prediction.output,
    );
    expect(stepper.counts.expired).toBe(1);
  });

  it('keeps keys idle for no more than the TTL', async () => {
    const { send, store } = setup('event');
    await send(ev('a', 0));
    const out = await send(ev('b', TTL), ev('a', TTL));
    expect(kinds(out)).toEqual(['prediction', 'prediction']);
    expect(out[1]).toMatchObject({ prediction: { seq: 2 } });
    expect(await store.size()).toBe(2);
  });

  it('bounds the sweep’s work per batch', async () => {
    const { send } = setup('event', 2);
    await send(...['a', 'b', 'c', 'd', 'e'].map((k) => ev(k, 0)));
    const expiredPerBatch: number[] = [];
    for (let i = 1; i <= 4; i++) {
      const out = await send(ev('z', TTL + i));
      expiredPerBatch.push(out.filter((o) => o.kind === 'expired').length);
    }
    expect(Math.max(...expiredPerBatch)).toBeLessThanOrEqual(2);
    expect(expiredPerBatch.reduce((a, b) => a + b, 0)).toBe(5);
  });
});

describe('TTL sweep pacing', () => {
  it('examines sweepPerEvent stored keys per event of the batch, up to maxPerSweep', async () => {
    const { send, stepper } = setup('event', 10, 2);
    const idle = Array.from({ length: 30 }, (_, i) => `k${i}`);
    await send(...idle.map((k) => ev(k, 0)));
    // One event: 2 keys examined (the batch's own key is fresh), so at most 2 expire.
    const one = await send(ev('z', TTL + 1));
    expect(one.filter((o) => o.kind === 'expired').length).toBeLessThanOrEqual(2);
    // Eight events in a batch: 16 asked, capped at maxPerSweep 10.
    const eight = await send(...Array.from({ length: 8 }, (_, i) => ev('z', TTL + 2 + i)));
    expect(eight.filter((o) => o.kind === 'expired').length).toBeLessThanOrEqual(10);
    expect(eight.filter((o) => o.kind === 'expired').length).toBeGreaterThan(2);
    // Single events keep the pass going until every idle key is reported, each once.
    for (let t = 0; t < 40 && stepper.counts.expired < idle.length; t++) await send(ev('z', TTL + 20 + t));
    expect(stepper.counts.expired).toBe(idle.length);
  });

  it('refuses a sweepPerEvent below 1', () => {
    expect(() => setup('event', undefined, 0)).toThrow(/sweepPerEvent must be a positive integer, got 0/);
  });
});

describe('TTL in processing time', () => {
  it('expires keys not written for longer than the TTL by the injected clock, via the sweep and on arrival', async () => {
    const { send, clock, store, emitted } = setup('processing');
    clock.now = 1_000;
    await send(ev('a', 5), ev('b', 5));
    clock.now = 1_000 + TTL;
    expect(kinds(await send(ev('b', 6)))).toEqual(['prediction']);
    clock.now = 1_000 + TTL + 1;
    // Event time does not matter here: a is stale by the wall clock.
    const out = await send(ev('c', 0));
    expect(out.filter((o) => o.kind === 'expired')).toEqual([
      expect.objectContaining({
        key: 'a',
        lastTs: 5,
        seq: 1,
        reason: expect.stringMatching(/processing time/),
      }),
    ]);
    expect(emitted.at(-1)).toEqual(out);
    expect(await store.getMany(['a'])).toEqual([undefined]);
    clock.now += TTL + 1;
    const arrival = await send(ev('b', 7));
    expect(kinds(arrival)[0]).toBe('expired');
    expect(arrival.find((o) => o.kind === 'prediction')).toMatchObject({ prediction: { key: 'b', seq: 1 } });
  });
});

describe('TTL sweep over LMDB', () => {
  it('walks the store across batches while they write, expiring every idle key once', async () => {
    const dir = await tempDir('ttl-lmdb');
    const store = await LmdbStore.open({ path: join(dir, 'state') });
    const stepper = new KeyedStepper({
      model: tinyLstm(),
      store,
      ttl: { ttlMs: TTL, clock: 'event', maxPerSweep: 7 },
    });
    let line = 0;
    const send = (...events: Event[]) => stepper.process(events.map((e) => at(++line, e)));
    await send(...Array.from({ length: 60 }, (_, i) => ev(`idle-${i}`, i)));
    const expired: string[] = [];
    for (let i = 0; i < 30; i++) {
      // Each batch writes fresh keys while the sweep's pass is open.
      const out = await send(ev(`live-${i}`, TTL + 100), ev(`live-${i + 1}`, TTL + 100));
      expired.push(...out.flatMap((o) => (o.kind === 'expired' ? [o.key] : [])));
    }
    expect(expired.sort()).toEqual(Array.from({ length: 60 }, (_, i) => `idle-${i}`).sort());
    expect(await store.size()).toBe(31);
    await stepper.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
});

describe('durations', () => {
  it('parses units and formats spans', () => {
    expect(parseDuration('30d')).toBe(TTL);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('250')).toBe(250);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(() => parseDuration('soon', '--ttl')).toThrow(/--ttl 'soon' is not a duration/);
    expect(() => parseDuration('0s')).toThrow(/more than zero/);
    expect(formatMs(TTL + 3_600_000 + 5)).toBe('30d 1h');
    expect(formatMs(61_000)).toBe('1m 1s');
    expect(formatMs(12)).toBe('12ms');
  });
});
