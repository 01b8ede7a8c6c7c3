import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import { perEvent } from '../../src/engine/rollout.js';
import type { Model } from '../../src/model/types.js';
import type { RunningServer } from '../../src/server/serve.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import { STORE_META_FILE } from '../../src/state/storeMeta.js';
import { ensureBuilt } from '../helpers/build.js';
import { runBin, runMain } from '../helpers/cli.js';
import { tempDir } from '../helpers/fixtures.js';
import { lmdbRecords } from '../helpers/lmdbRecords.js';
import { prng, tinyLstm } from '../helpers/models.js';
import { connect, exchange, modelFile, startTestServer } from '../helpers/serve.js';

const A = tinyLstm(7);
const B: Model = { ...tinyLstm(8), version: '2' };

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});
beforeAll(() => ensureBuilt(), 300_000);

interface Ev {
  key: string;
  ts: number;
  id: string;
  features: number[];
}

function events(n: number, keys: number): Ev[] {
  const rnd = prng(42);
  return Array.from({ length: n }, (_, i) => ({
    key: `k${Math.floor(rnd() * keys)}`,
    ts: 1_700_000_000_000 + i * 1000,
    id: `e${i}`,
    features: [rnd() * 2 - 1, rnd() * 2 - 1, rnd() * 2 - 1],
  }));
}

/** Each event's output from `model` alone over `events` in one uninterrupted run (`id` → output). */
async function offline(model: Model, evs: readonly Ev[]): Promise<Map<string, number[]>> {
  const stepper = new KeyedStepper({ model, store: new MemoryStateStore() });
  const outcomes = perEvent(
    await stepper.process(evs.map((event) => ({ event, position: { kind: 'none' as const } }))),
  );
  const out = new Map<string, number[]>();
  outcomes.forEach((o, i) => {
    if (o.kind !== 'prediction') throw new Error(`offline ${o.kind}`);
    out.set(evs[i].id, o.prediction.output);
  });
  return out;
}

/** Serves `evs` through a fresh test server with `config`, one message per 20 events; returns the answers. */
async function serveEvents(config: Record<string, unknown>, evs: readonly Ev[]) {
  const s = await startTestServer(config);
  server = s;
  const ws = await connect(s.ws('/ingest'));
  const answers: Array<Record<string, unknown>> = [];
  for (let i = 0; i < evs.length; i += 20) answers.push(...(await exchange(ws, evs.slice(i, i + 20))));
  ws.close();
  await s.close();
  server = undefined;
  return answers;
}

async function singleSize(dir: string): Promise<number> {
  const store = await LmdbStore.open({ path: dir });
  try {
    return await store.size();
  } finally {
    await store.close();
  }
}

describe('cellstream state adopt / retire', () => {
  it('adopt → serve with several models → retire: every key continues bit for bit as one uninterrupted run', async () => {
    const all = events(300, 8);
    const [first, second, third, fourth] = [
      all.slice(0, 100),
      all.slice(100, 200),
      all.slice(200, 250),
      all.slice(250),
    ];
    const dir = await tempDir('state-move');
    const [a, b] = [await modelFile(A), await modelFile(B)];
    // B shadows from the adoption on, and after its retirement serves alone what A did not.
    const [outA, outB] = [await offline(A, all), await offline(B, [...second, ...fourth])];

    // Months of serve with one model, in short.
    const got1 = await serveEvents({ model: { path: a }, state: { store: 'lmdb', path: dir } }, first);
    expect(got1.map((p) => p['output'])).toEqual(first.map((e) => outA.get(e.id)));
    const before = lmdbRecords(dir);
    expect(before.size).toBe(new Set(first.map((e) => e.key)).size);

    const adopted = await runMain(['state', 'adopt', '--model', a, '--state', dir, '--namespace', 'tiny@1']);
    expect(adopted.code, adopted.stderr).toBe(0);
    expect(adopted.stdout).toContain(`moved the state of ${before.size} keys from ${dir}`);
    // Each record's bytes (state, seq, ts, last applied event and ids, fingerprint) unchanged.
    expect(lmdbRecords(join(dir, 'models'), 'model:tiny@1')).toEqual(before);
    expect(await singleSize(dir)).toBe(0);
    expect(existsSync(join(dir, STORE_META_FILE))).toBe(false);

    // The refusal at start no longer applies: the adopted model goes on as primary, B shadows it.
    const rollout = { model: { path: a, shadow: b }, state: { store: 'lmdb', path: dir } };
    const got2 = await serveEvents(rollout, second);
    expect(got2.map((p) => p['model'])).toEqual(second.map(() => 'tiny@1'));
    expect(got2.map((p) => p['output'])).toEqual(second.map((e) => outA.get(e.id)));
    // Retire the rollout keeping B (promoted) into a new directory, and A back into the old one.
    const other = await tempDir('state-move-retired');
    const retiredB = await runMain([
      'state',
      'retire',
      '--model',
      b,
      '--state',
      dir,
      '--namespace',
      'tiny@2',
      '--to',
      other,
    ]);
    expect(retiredB.code, retiredB.stderr).toBe(0);
    const retiredA = await runMain([
      'state',
      'retire',
      '--model',
      a,
      '--state',
      dir,
      '--namespace',
      'tiny@1',
    ]);
    expect(retiredA.code, retiredA.stderr).toBe(0);
    expect(retiredA.stdout).toMatch(/retired: moved the state of 8 keys/);
    expect(lmdbRecords(join(dir, 'models'), 'model:tiny@1').size).toBe(0);

    // The last event the rollout applied, sent again, is recognised as a redelivery after the move back.
    const single = { model: { path: a }, state: { store: 'lmdb', path: dir } };
    const again = await serveEvents(single, [second[second.length - 1]]);
    expect(again[0]['redelivered']).toBe(true);
    expect(again[0]['output']).toEqual(outA.get(second[second.length - 1].id));
    const got3 = await serveEvents(single, third);
    expect(got3.map((p) => p['output'])).toEqual(third.map((e) => outA.get(e.id)));
    const got4 = await serveEvents({ model: { path: b }, state: { store: 'lmdb', path: other } }, fourth);
    expect(got4.map((p) => p['output'])).toEqual(fourth.map((e) => outB.get(e.id)));
  }, 240_000);

  it('refuses another model’s records, a namespace holding other records, a running serve, an empty source', async () => {
    const dir = await tempDir('state-move-refuse');
    const [a, b] = [await modelFile(A), await modelFile(B)];
    const evs = events(40, 4);
    await serveEvents({ model: { path: a }, state: { store: 'lmdb', path: dir } }, evs);

    const wrongModel = await runMain([
      'state',
      'adopt',
      '--model',
      b,
      '--state',
      dir,
      '--namespace',
      'tiny@2',
    ]);
    expect(wrongModel.code).toBe(1);
    expect(wrongModel.stderr).toMatch(
      /holds records written by another model than tiny@2 \(\w+\): 4 by \w+; give --model the model file that wrote this state/,
    );

    // A namespace already filled (here by a warm-up of its own) is not overwritten.
    const other = await tempDir('state-move-refuse-ns');
    const filled = await serveEvents(
      { model: { path: a, shadow: b }, state: { store: 'lmdb', path: other } },
      events(10, 2),
    );
    expect(filled).toHaveLength(10);
    const busy = await runMain([
      'state',
      'adopt',
      '--model',
      a,
      '--state',
      dir,
      '--namespace',
      'tiny@1',
      '--to',
      other,
    ]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(
      /already holds the state of 2 keys, not a copy of .*choose another --namespace/,
    );

    // A serve holding the directory (this process, after its first read) is seen by the CLI's process.
    const s = await startTestServer({ model: { path: a }, state: { store: 'lmdb', path: dir } });
    server = s;
    const ws = await connect(s.ws('/ingest'));
    await exchange(ws, evs.slice(0, 1));
    const running = await runBin(['state', 'adopt', '--model', a, '--state', dir, '--namespace', 'tiny@1']);
    expect(running.code).toBe(1);
    expect(running.stderr).toMatch(
      new RegExp(`${dir} is open in process ${process.pid} \\(serve\\?\\): stop it`),
    );
    ws.close();
    await s.close();
    server = undefined;
    const before = lmdbRecords(dir);
    for (const args of [
      ['--model', b, '--namespace', 'tiny@2'],
      ['--model', a, '--namespace', 'tiny@1', '--to', other],
    ]) {
      expect((await runMain(['state', 'adopt', '--state', dir, ...args])).code).toBe(1);
    }
    // Nothing refused has changed the source.
    expect(lmdbRecords(dir)).toEqual(before);
    const empty = await tempDir('state-move-empty');
    const none = await runMain(['state', 'retire', '--model', a, '--state', empty, '--namespace', 'tiny@1']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/holds no model namespaces/);
  }, 240_000);
  it('state --help lists adopt and retire; each documents its options and needs --namespace', async () => {
    const help = await runMain(['state', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/adopt \[options\][\s\S]*retire \[options\]/);
    for (const move of ['adopt', 'retire']) {
      const options = await runMain(['state', move, '--help']);
      expect(options.stdout).toMatch(
        /--model <file>[\s\S]*--state <dir>[\s\S]*--namespace <name>[\s\S]*--to <dir>/,
      );
      const missing = await runMain(['state', move, '--model', 'm.cellstream.json', '--state', 'x']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/required option '--namespace <name>' not specified/);
    }
  });
});
