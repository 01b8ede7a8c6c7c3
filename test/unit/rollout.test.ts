import { describe, expect, it } from 'vitest';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import { Divergence, perEvent, RolloutStepper } from '../../src/engine/rollout.js';
import type { Envelope, Outcome } from '../../src/engine/types.js';
import type { Model } from '../../src/model/types.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import { LmdbModelStates, openModelStore } from '../../src/state/modelStates.js';
import type { StateStore } from '../../src/state/types.js';
import { tempDir } from '../helpers/fixtures.js';
import { prng, tinyLstm } from '../helpers/models.js';

const A = tinyLstm(7);
const B: Model = { ...tinyLstm(8), version: '2' };

/** `n` events over `keys` keys, each with an id, features drawn from `seed`. */
function events(n: number, keys: number, seed: number): Envelope[] {
  const rnd = prng(seed);
  return Array.from({ length: n }, (_, i) => ({
    event: {
      key: `k${Math.floor(rnd() * keys)}`,
      ts: 1_700_000_000_000 + i * 1000,
      id: `e${i}`,
      features: [rnd() * 2 - 1, rnd() * 2 - 1, rnd() * 2 - 1],
    },
    position: { kind: 'none' as const },
  }));
}

/** Every event's output from `model` alone, stepped over the whole sequence in batches of `size`. */
async function offline(model: Model, all: readonly Envelope[], size: number): Promise<number[][]> {
  const stepper = new KeyedStepper({ model, store: new MemoryStateStore() });
  const out: number[][] = [];
  for (let i = 0; i < all.length; i += size) {
    for (const o of perEvent(await stepper.process(all.slice(i, i + size)))) {
      if (o.kind !== 'prediction') throw new Error(`offline ${o.kind}`);
      out.push(o.prediction.output);
    }
  }
  return out;
}

function rollout(
  states: LmdbModelStates,
  hooks: ConstructorParameters<typeof RolloutStepper>[0]['hooks'] = {},
) {
  return new RolloutStepper({
    models: [
      { name: 'a', stepper: new KeyedStepper({ model: A, store: states.store('a') }) },
      { name: 'b', stepper: new KeyedStepper({ model: B, store: states.store('b') }) },
    ],
    primary: 'a',
    states,
    hooks,
  });
}

function predictions(outcomes: readonly Outcome[]) {
  return perEvent(outcomes).map((o) => {
    if (o.kind !== 'prediction') throw new Error(`expected a prediction, got ${o.kind}`);
    return o.prediction;
  });
}

describe('RolloutStepper on LMDB', () => {
  it('answers with the primary only, steps the shadow beside it, and switches exactly at a batch boundary, durably', async () => {
    const dir = await tempDir('rollout');
    const all = events(600, 25, 3);
    const [outA, outB] = [await offline(A, all, 50), await offline(B, all, 50)];
    let states = new LmdbModelStates(dir);
    const shadowSeen: string[] = [];
    let r = rollout(states, {
      onShadow: (name, outcomes) => {
        for (const p of predictions(outcomes)) shadowSeen.push(`${name}:${p.model}`);
      },
    });
    const answers: Array<{ model: string; output: number[] }> = [];
    const switches: Array<{ at: number; primary: string }> = [];
    for (let i = 0; i < all.length; i += 50) {
      if (i === 200) {
        // Requested after the batch was handed over but before it started: the batch carries it.
        const batch = r.process(all.slice(i, i + 50));
        const sw = r.promote();
        for (const p of predictions(await batch)) answers.push(p);
        const result = await sw;
        expect(result).toMatchObject({ primary: 'b', previous: 'a', switched: true });
        switches.push(result);
        continue;
      }
      if (i === 400) {
        // Reopened as after a crash: the switch is in the store, not in memory.
        await r.close();
        await states.close();
        states = new LmdbModelStates(dir);
        expect(states.readMeta()).toMatchObject({ primary: 'b', events: 400 });
        r = rollout(states);
        expect(r.primary).toBe('b');
        const back = await r.rollback();
        expect(back).toMatchObject({ primary: 'a', previous: 'b', at: 400 });
        switches.push(back);
      }
      for (const p of predictions(await r.process(all.slice(i, i + 50)))) answers.push(p);
    }
    expect(switches.map((s) => [s.at, s.primary])).toEqual([
      [200, 'b'],
      [400, 'a'],
    ]);
    // Each event answered once, by the model primary at its position, bit for bit that model's
    // output over the whole sequence: both models stepped every event.
    expect(answers).toHaveLength(all.length);
    answers.forEach((p, i) => {
      const byB = i >= 200 && i < 400;
      expect(p.model).toBe(byB ? 'tiny@2' : 'tiny@1');
      expect(p.output).toEqual(byB ? outB[i] : outA[i]);
    });
    // The shadow's predictions went to the hook only, each from the model not answering.
    expect(shadowSeen.slice(0, 200).every((s) => s === 'b:tiny@2')).toBe(true);
    expect(shadowSeen.slice(200, 400).every((s) => s === 'a:tiny@1')).toBe(true);
    expect(states.readMeta()).toMatchObject({ primary: 'a', events: 600 });
    await r.close();
    await states.close();
  });

  it('repeats a resent event from the model that was primary where it was applied, across a switch', async () => {
    const states = new LmdbModelStates(await tempDir('rollout-repeat'));
    const r = rollout(states);
    const all = events(30, 3, 11);
    const first = predictions(await r.process(all.slice(0, 20)));
    await r.promote();
    // The last event of each key in the first batch, sent again, and a new event.
    const resent = [...new Map(all.slice(0, 20).map((e, i) => [e.event!.key, i])).values()];
    const again = perEvent(await r.process([...resent.map((i) => all[i]), all[20]]));
    expect(
      again
        .slice(0, resent.length)
        .map((o) =>
          o.kind === 'prediction' ? [o.prediction.model, o.prediction.output, o.redelivered] : o.kind,
        ),
    ).toEqual(resent.map((i) => ['tiny@1', first[i].output, true]));
    expect(predictions(again.slice(-1))[0].model).toBe('tiny@2');
    await r.close();
    await states.close();
  });

  it("a shadow's failure fails nothing of the primary's and writes none of the shadow's state", async () => {
    const dir = await tempDir('rollout-fail');
    const states = new LmdbModelStates(dir);
    const good = states.store('a');
    let broken = false;
    const flaky: StateStore = Object.assign(Object.create(states.store('b')), {
      getMany(keys: readonly string[], into?: Parameters<StateStore['getMany']>[1]) {
        if (broken) return Promise.reject(new Error('disk on fire'));
        return states.store('b').getMany(keys, into);
      },
    });
    const failures: string[] = [];
    const r = new RolloutStepper({
      models: [
        { name: 'a', stepper: new KeyedStepper({ model: A, store: good }) },
        { name: 'b', stepper: new KeyedStepper({ model: B, store: flaky }) },
      ],
      primary: 'a',
      states,
      hooks: { onShadowFailure: (name, err) => failures.push(`${name}: ${(err as Error).message}`) },
    });
    const all = events(100, 5, 9);
    const expected = await offline(A, all, 20);
    const got: number[][] = [];
    for (let i = 0; i < 100; i += 20) {
      broken = i === 40;
      for (const p of predictions(await r.process(all.slice(i, i + 20)))) got.push(p.output);
    }
    expect(got).toEqual(expected);
    expect(failures).toEqual(['b: disk on fire']);
    // The failed batch is missing from the shadow: 80 of 100 steps, over its keys.
    let steps = 0;
    for await (const [, record] of states.store('b').entries()) steps += record.seq;
    expect(steps).toBe(80);
    await r.close();
    await states.close();
  });

  it('a hook that throws after a durable batch fails nothing: the answers go out, the error is reported', async () => {
    const dir = await tempDir('rollout-hook');
    const states = new LmdbModelStates(dir);
    const reported: string[] = [];
    const r = rollout(states, {
      onShadow: () => {
        throw new Error('subscriber broke');
      },
      onSwitch: () => {
        throw new Error('metrics broke');
      },
      onHookError: (hook, err) => reported.push(`${hook}: ${(err as Error).message}`),
    });
    const all = events(60, 4, 21);
    const got = predictions(await r.process(all.slice(0, 30))).map((p) => p.output);
    expect(got).toEqual((await offline(A, all, 30)).slice(0, 30));
    expect(reported).toEqual(['onShadow: subscriber broke']);
    await r.promote('b');
    expect(reported).toContain('onSwitch: metrics broke');
    // The switch stands and the next batch is answered by b, continuing its own state.
    const after = predictions(await r.process(all.slice(30))).map((p) => p.output);
    expect(after).toEqual((await offline(B, all, 30)).slice(30));
    expect(r.primary).toBe('b');
    await r.close();
    await states.close();
  });

  it('promote without a name when there are several shadows says to name one', async () => {
    const dir = await tempDir('rollout-names');
    const states = new LmdbModelStates(dir);
    const r = new RolloutStepper({
      models: ['a', 'b', 'c'].map((name, i) => ({
        name,
        stepper: new KeyedStepper({ model: tinyLstm(30 + i), store: states.store(name) }),
      })),
      primary: 'a',
      states,
    });
    await expect(r.promote()).rejects.toThrow(
      /more than one shadow \(models: a, b, c\): name the one to promote/,
    );
    await expect(r.promote('zz')).rejects.toThrow(/no model is named 'zz': known are a, b, c/);
    await r.close();
    await states.close();
  });

  it('openModelStore gives a model namespace another process (warm start) can fill and serve then reads', async () => {
    const dir = await tempDir('rollout-open');
    const config = { state: { store: 'lmdb' as const, path: dir, maxKeys: 10 } };
    const store = await openModelStore(config, 'b');
    const warm = new KeyedStepper({ model: B, store });
    const all = events(40, 4, 5);
    await warm.process(all);
    await warm.close();
    await store.close();
    const states = new LmdbModelStates(`${dir}/models`);
    const [rec] = await states.store('b').getMany([all[39].event!.key]);
    expect(rec?.fingerprint).toBe(
      new KeyedStepper({ model: B, store: new MemoryStateStore() })['fingerprint'],
    );
    expect(await states.store('a').size()).toBe(0);
    await states.close();
  });

  it('divergence: mean and max absolute difference, and label agreement', () => {
    const d = new Divergence('a', 'b');
    const p = (output: number[], label?: string): Outcome => ({
      kind: 'prediction',
      prediction: { key: 'k', ts: 1, seq: 1, model: 'm', output, ...(label ? { label } : {}) },
      position: { kind: 'none' },
    });
    d.add([p([0, 1], 'x'), p([0.5, 0.5], 'y')], [p([0.25, 1], 'x'), p([0.5, 0], 'x')]);
    expect(d.snapshot()).toEqual({
      primary: 'a',
      shadow: 'b',
      events: 2,
      meanAbsDiff: (0.25 + 0 + 0 + 0.5) / 4,
      maxAbsDiff: 0.5,
      labelAgreement: 0.5,
    });
  });
});
