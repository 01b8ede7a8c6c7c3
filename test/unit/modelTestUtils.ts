import type { Activation, GruLayer, LstmLayer, Model } from '../../src/model/types.js';

/** Deterministic pseudo-random floats in [-scale, scale) (mulberry32), so tests need no fixtures. */
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

export function randomArray(n: number, rnd: () => number, scale = 0.5): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rnd() * 2 - 1) * scale;
  return a;
}

const sigmoid: Activation = { kind: 'sigmoid' };
const tanh: Activation = { kind: 'tanh' };

export function randomLstm(
  I: number,
  H: number,
  rnd: () => number,
  extra: Partial<LstmLayer> = {},
): LstmLayer {
  return {
    kind: 'lstm',
    inputSize: I,
    hiddenSize: H,
    W: randomArray(4 * H * I, rnd),
    R: randomArray(4 * H * H, rnd),
    b: randomArray(4 * H, rnd),
    inputForget: false,
    activations: { f: sigmoid, g: tanh, h: tanh },
    ...extra,
  };
}

export function randomGru(I: number, H: number, rnd: () => number, extra: Partial<GruLayer> = {}): GruLayer {
  return {
    kind: 'gru',
    inputSize: I,
    hiddenSize: H,
    W: randomArray(3 * H * I, rnd),
    R: randomArray(3 * H * H, rnd),
    bW: randomArray(3 * H, rnd),
    bR: randomArray(3 * H, rnd),
    linearBeforeReset: true,
    activations: { f: sigmoid, g: tanh },
    ...extra,
  };
}

/** A two-layer (LSTM over GRU) single-input model with a softmax head. */
export function smallModel(seed = 1, I = 3, H = 5, O = 4): Model {
  const rnd = prng(seed);
  return {
    name: 'small',
    source: 'test',
    inputs: [{ name: 'x', size: I }],
    branches: [{ input: 'x', layers: [randomLstm(I, H, rnd), randomGru(H, H, rnd)] }],
    head: [
      {
        kind: 'dense',
        inputSize: H,
        outputSize: O,
        W: randomArray(O * H, rnd),
        b: randomArray(O, rnd),
        activation: { kind: 'softmax' },
      },
    ],
  };
}
