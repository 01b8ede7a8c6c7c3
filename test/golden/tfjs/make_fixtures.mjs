// Builds the TF.js golden fixtures with the real framework: `node test/golden/tfjs/make_fixtures.mjs`.
//
// Each model is built with tf.sequential, its weights set from a seeded PRNG (so reruns write
// the same bytes, whatever tfjs's initialisers do), saved in the layers format exactly as
// tfjs's file:// handler lays it out (model.json + weights.bin), and run with model.predict
// over each key's whole sequence. The per-step outputs come from a twin model whose last
// recurrent layer returns sequences and shares the weights, so a Dense head applies per step.
// It also writes the refusal inputs under test/fixtures/tfjs-bad/.

import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = path.resolve(here, '../fixtures');
const BAD = path.resolve(here, '../../fixtures/tfjs-bad');

await tf.setBackend('cpu');
await tf.ready();
const PRODUCER = `@tensorflow/tfjs ${tf.version.tfjs} (cpu backend)`;

/** mulberry32: small, seedable, and the same in every Node version. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uniform(rand, lo, hi) {
  return lo + (hi - lo) * rand();
}

/**
 * Sets every weight of `model` from the PRNG. Kernels get a scale that keeps pre-activations
 * in the range where hard_sigmoid is sometimes inside (0, 1) and sometimes clipped.
 */
function setSeededWeights(model, rand) {
  const values = model.weights.map((w) => {
    const size = w.shape.reduce((a, b) => a * b, 1);
    const scale = w.name.endsWith('bias') ? 0.5 : 0.7;
    const data = Float32Array.from({ length: size }, () => uniform(rand, -scale, scale));
    return tf.tensor(data, w.shape, 'float32');
  });
  model.setWeights(values);
  for (const t of values) t.dispose();
}

/** Writes model.json + weights.bin as tfjs's file:// handler (tfjs-node) does. */
async function saveLayersModel(model, dir) {
  mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const modelJson = {
        modelTopology: artifacts.modelTopology,
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      };
      writeFileSync(path.join(dir, 'model.json'), `${JSON.stringify(modelJson, null, 2)}\n`);
      writeFileSync(
        path.join(dir, 'weights.bin'),
        Buffer.from(tf.io.CompositeArrayBuffer.join(artifacts.weightData)),
      );
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}

/**
 * Events for `keys` keys of different lengths in 5..30, interleaved at random, with event times
 * increasing by irregular gaps. `resetAt` (optional) makes one key's event a reset.
 */
function makeEvents(rand, inputSize, keyCount, resetAt) {
  const lengths = [];
  while (lengths.length < keyCount) {
    const n = 5 + Math.floor(rand() * 26);
    if (!lengths.includes(n)) lengths.push(n);
  }
  const pending = lengths.map((n, k) => ({ key: `k${k + 1}`, left: n, done: 0 }));
  const events = [];
  let ts = 1732700000000;
  while (pending.some((p) => p.left > 0)) {
    const open = pending.filter((p) => p.left > 0);
    const p = open[Math.floor(rand() * open.length)];
    ts += 1 + Math.floor(rand() * 90_000);
    const features = Array.from({ length: inputSize }, () => Math.fround(uniform(rand, -1.5, 1.5)));
    const event = { key: p.key, ts, features };
    if (resetAt && resetAt.key === p.key && resetAt.step === p.done) {
      events.push({ key: p.key, ts, reset: true, features });
    } else {
      events.push(event);
    }
    p.left -= 1;
    p.done += 1;
  }
  return events;
}

/** Splits events into per-key sequences, a reset starting a new sequence. */
function sequences(events) {
  const current = new Map();
  const all = [];
  for (const [index, e] of events.entries()) {
    let seq = current.get(e.key);
    if (!seq || e.reset) {
      seq = { key: e.key, indices: [] };
      current.set(e.key, seq);
      all.push(seq);
    }
    seq.indices.push(index);
  }
  return all;
}

function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * build(lastReturnsSequences) must return a fresh tf.Sequential; the saved model is
 * build(false) unless `alwaysSequences`, the per-step oracle is build(true) with the same weights.
 */
async function makeFixture({ name, seed, inputSize, build, alwaysSequences = false, resetAt }) {
  const rand = prng(seed);
  const model = build(alwaysSequences);
  setSeededWeights(model, rand);
  const twin = build(true);
  twin.setWeights(model.getWeights());

  const dir = path.join(FIXTURES, name);
  rmSync(dir, { recursive: true, force: true });
  await saveLayersModel(model, dir);

  const events = makeEvents(rand, inputSize, 4, resetAt);
  const outputs = new Array(events.length);
  let outputSize = 0;
  let sanity = 0;
  for (const seq of sequences(events)) {
    const steps = seq.indices.map((i) => events[i].features);
    const x = tf.tensor3d([steps], [1, steps.length, inputSize], 'float32');
    const perStep = twin.predict(x);
    const rows = perStep.arraySync()[0];
    outputSize = rows[0].length;
    seq.indices.forEach((eventIndex, t) => {
      outputs[eventIndex] = rows[t];
    });
    // The saved model's own whole-sequence output must be the twin's last step.
    const last = model.predict(x);
    const lastRow = alwaysSequences ? last.arraySync()[0].at(-1) : last.arraySync()[0];
    sanity = Math.max(sanity, maxAbsDiff(lastRow, rows.at(-1)));
    tf.dispose([x, perStep, last]);
  }
  if (sanity > 1e-6) throw new Error(`${name}: twin model disagrees with the saved model by ${sanity}`);

  const fixture = {
    name,
    format: 'tfjs',
    model: 'model.json',
    producer: PRODUCER,
    oracle: 'tfjs',
    tolerance: 1e-5,
    outputSize,
  };
  writeFileSync(path.join(dir, 'fixture.json'), `${JSON.stringify(fixture, null, 2)}\n`);
  writeFileSync(path.join(dir, 'events.ndjson'), events.map((e) => `${JSON.stringify(e)}\n`).join(''));
  writeFileSync(
    path.join(dir, 'expected.ndjson'),
    events.map((e, i) => `${JSON.stringify({ key: e.key, ts: e.ts, output: outputs[i] })}\n`).join(''),
  );
  console.log(`${name}: ${events.length} events, output size ${outputSize}`);
}

// Default LSTM: tfjs's recurrent activation default is hard_sigmoid. One key is reset midway.
await makeFixture({
  name: 'tfjs-lstm-default',
  seed: 101,
  inputSize: 4,
  resetAt: { key: 'k2', step: 4 },
  build: (seqOut) =>
    tf.sequential({
      layers: [
        tf.layers.lstm({ units: 8, inputShape: [null, 4], returnSequences: seqOut }),
        tf.layers.dense({ units: 3 }),
      ],
    }),
});

// Two stacked LSTMs with sigmoid gates, a Dropout between (identity at inference), softmax head.
await makeFixture({
  name: 'tfjs-lstm-sigmoid',
  seed: 202,
  inputSize: 5,
  build: (seqOut) =>
    tf.sequential({
      layers: [
        tf.layers.lstm({
          units: 12,
          inputShape: [null, 5],
          recurrentActivation: 'sigmoid',
          returnSequences: true,
        }),
        tf.layers.dropout({ rate: 0.3 }),
        tf.layers.lstm({ units: 8, recurrentActivation: 'sigmoid', returnSequences: seqOut }),
        tf.layers.dense({ units: 4, activation: 'softmax' }),
      ],
    }),
});

// Default GRU (hard_sigmoid gates, reset_after=false), an explicit InputLayer, sigmoid head.
await makeFixture({
  name: 'tfjs-gru',
  seed: 303,
  inputSize: 3,
  build: (seqOut) =>
    tf.sequential({
      layers: [
        tf.layers.inputLayer({ batchInputShape: [null, null, 3] }),
        tf.layers.gru({ units: 10, returnSequences: seqOut }),
        tf.layers.dense({ units: 1, activation: 'sigmoid' }),
      ],
    }),
});

// tfjs-layers runs only reset_after=false (it throws on true). Stacked GRUs, the first without
// biases, the last returning sequences in the saved model too, so the Dense applies per step.
await makeFixture({
  name: 'tfjs-gru-reset-before',
  seed: 404,
  inputSize: 6,
  alwaysSequences: true,
  build: () =>
    tf.sequential({
      layers: [
        tf.layers.gru({
          units: 8,
          inputShape: [null, 6],
          resetAfter: false,
          useBias: false,
          returnSequences: true,
        }),
        tf.layers.gru({
          units: 6,
          resetAfter: false,
          recurrentActivation: 'sigmoid',
          activation: 'relu',
          returnSequences: true,
        }),
        tf.layers.dense({ units: 2 }),
      ],
    }),
});

// Dense relu → Dense linear (no bias) head on an LSTM with explicit camelCase hardSigmoid.
await makeFixture({
  name: 'tfjs-dense-head',
  seed: 505,
  inputSize: 8,
  build: (seqOut) =>
    tf.sequential({
      layers: [
        tf.layers.lstm({
          units: 16,
          inputShape: [null, 8],
          activation: 'tanh',
          recurrentActivation: 'hardSigmoid',
          returnSequences: seqOut,
        }),
        tf.layers.dense({ units: 8, activation: 'relu' }),
        tf.layers.dense({ units: 2, activation: 'linear', useBias: false }),
      ],
    }),
});

// Refusals, saved by tfjs itself so their topology is what tfjs really writes.
async function makeBad(name, seed, layers) {
  const model = tf.sequential({ layers });
  setSeededWeights(model, prng(seed));
  const dir = path.join(BAD, name);
  rmSync(dir, { recursive: true, force: true });
  await saveLayersModel(model, dir);
  console.log(`tfjs-bad/${name}`);
}

await makeBad('bidirectional', 901, [
  tf.layers.bidirectional({
    layer: tf.layers.lstm({ units: 4, name: 'inner_lstm' }),
    inputShape: [null, 3],
    name: 'bidi',
  }),
  tf.layers.dense({ units: 1 }),
]);
await makeBad('go-backwards', 902, [
  tf.layers.lstm({ units: 4, inputShape: [null, 3], goBackwards: true, name: 'backwards_lstm' }),
  tf.layers.dense({ units: 1 }),
]);
await makeBad('conv1d', 903, [
  tf.layers.conv1d({ filters: 4, kernelSize: 2, inputShape: [null, 3], name: 'conv' }),
  tf.layers.lstm({ units: 4 }),
  tf.layers.dense({ units: 1 }),
]);
await makeBad('embedding', 904, [
  tf.layers.embedding({ inputDim: 10, outputDim: 3, inputShape: [null], name: 'embed' }),
  tf.layers.gru({ units: 4 }),
  tf.layers.dense({ units: 1 }),
]);

// biome formats JSON under test/fixtures (test/golden is excluded); format here so that a rerun
// leaves the committed files unchanged.
execFileSync(path.resolve(here, '../../../node_modules/.bin/biome'), ['format', '--write', BAD], {
  stdio: 'ignore',
});
