// Small models built in code, so tests need no fixtures: layers filled from a deterministic number
// source, the fixed models most tests share, and seeded random layers for numeric comparisons.
import type { DenseLayer, GruLayer, LstmLayer, Model } from '../../src/model/types.js';

/** Makes the next weight array of `n` values; a layer takes its arrays in the order it lists them. */
type Fill = (n: number) => Float32Array;

/** Deterministic pseudo-random floats in [0, 1) (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` values drawn from `rnd`, spread over [-scale, scale). */
export function randomArray(n: number, rnd: () => number, scale = 0.5): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rnd() * 2 - 1) * scale;
  return a;
}

/** Fills from `rnd`, one draw after another (randomArray, scale 0.5). */
const drawn =
  (rnd: () => number): Fill =>
  (n) =>
    randomArray(n, rnd);

/**
 * Fills from a fixed linear congruential sequence in [-0.5, 0.5): the first array from `seed`, each
 * next one from the next seed.
 */
function seeded(seed: number): Fill {
  let next = seed;
  return (n) => {
    const out = new Float32Array(n);
    let s = next++;
    for (let i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) % 2147483648;
      out[i] = s / 2147483648 - 0.5;
    }
    return out;
  };
}

function lstmLayer(I: number, H: number, fill: Fill, extra: Partial<LstmLayer> = {}): LstmLayer {
  return {
    kind: 'lstm',
    inputSize: I,
    hiddenSize: H,
    W: fill(4 * H * I),
    R: fill(4 * H * H),
    b: fill(4 * H),
    inputForget: false,
    activations: { f: { kind: 'sigmoid' }, g: { kind: 'tanh' }, h: { kind: 'tanh' } },
    ...extra,
  };
}

function gruLayer(I: number, H: number, fill: Fill, extra: Partial<GruLayer> = {}): GruLayer {
  return {
    kind: 'gru',
    inputSize: I,
    hiddenSize: H,
    W: fill(3 * H * I),
    R: fill(3 * H * H),
    bW: fill(3 * H),
    bR: fill(3 * H),
    linearBeforeReset: true,
    activations: { f: { kind: 'sigmoid' }, g: { kind: 'tanh' } },
    ...extra,
  };
}

function denseLayer(I: number, O: number, fill: Fill, activation: DenseLayer['activation']): DenseLayer {
  return { kind: 'dense', inputSize: I, outputSize: O, W: fill(O * I), b: fill(O), activation };
}

/** An LSTM layer (I inputs, H units) with weights drawn from `rnd`; `extra` overrides fields. */
export function randomLstm(
  I: number,
  H: number,
  rnd: () => number,
  extra: Partial<LstmLayer> = {},
): LstmLayer {
  return lstmLayer(I, H, drawn(rnd), extra);
}

/** A GRU layer (I inputs, H units) with weights drawn from `rnd`; `extra` overrides fields. */
export function randomGru(I: number, H: number, rnd: () => number, extra: Partial<GruLayer> = {}): GruLayer {
  return gruLayer(I, H, drawn(rnd), extra);
}

/** A 1-layer LSTM (3 inputs, 4 units) with a sigmoid dense head of 2 outputs. */
export function tinyLstm(seed = 7): Model {
  return {
    name: 'tiny',
    version: '1',
    source: 'test',
    inputs: [{ name: 'x', size: 3 }],
    branches: [{ input: 'x', layers: [lstmLayer(3, 4, seeded(seed))] }],
    head: [denseLayer(4, 2, seeded(seed + 10), { kind: 'sigmoid' })],
  };
}

/** Two inputs, `a` (2 values, LSTM) and `b` (1 value, GRU), concatenated into a 1-output head. */
export function twoInputModel(): Model {
  return {
    name: 'pair',
    source: 'test',
    inputs: [
      { name: 'a', size: 2 },
      { name: 'b', size: 1 },
    ],
    branches: [
      { input: 'a', layers: [lstmLayer(2, 3, seeded(21))] },
      { input: 'b', layers: [gruLayer(1, 2, seeded(31))] },
    ],
    head: [denseLayer(5, 1, seeded(41), { kind: 'sigmoid' })],
  };
}

/** A 1-layer LSTM (4 inputs, 4 units) with a 2-output head ending in `activation` (sigmoid by default). */
export function fourInputLstm(activation: DenseLayer['activation'] = { kind: 'sigmoid' }): Model {
  return {
    name: 'four',
    version: '1',
    source: 'test',
    inputs: [{ name: 'x', size: 4 }],
    branches: [{ input: 'x', layers: [lstmLayer(4, 4, seeded(51))] }],
    head: [denseLayer(4, 2, seeded(61), activation)],
  };
}

/** A two-layer (LSTM over GRU) single-input model with a softmax head, weights drawn from prng(seed). */
export function smallModel(seed = 1, I = 3, H = 5, O = 4): Model {
  const fill = drawn(prng(seed));
  return {
    name: 'small',
    source: 'test',
    inputs: [{ name: 'x', size: I }],
    branches: [{ input: 'x', layers: [lstmLayer(I, H, fill), gruLayer(H, H, fill)] }],
    head: [denseLayer(H, O, fill, { kind: 'softmax' })],
  };
}
