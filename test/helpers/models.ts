import type { DenseLayer, GruLayer, LstmLayer, Model } from '../../src/model/types.js';

/** Deterministic small weights: a fixed pseudo-random sequence in [-0.5, 0.5). */
function weights(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out[i] = s / 2147483648 - 0.5;
  }
  return out;
}

function lstm(inputSize: number, hiddenSize: number, seed: number): LstmLayer {
  return {
    kind: 'lstm',
    inputSize,
    hiddenSize,
    W: weights(4 * hiddenSize * inputSize, seed),
    R: weights(4 * hiddenSize * hiddenSize, seed + 1),
    b: weights(4 * hiddenSize, seed + 2),
    inputForget: false,
    activations: { f: { kind: 'sigmoid' }, g: { kind: 'tanh' }, h: { kind: 'tanh' } },
  };
}

function gru(inputSize: number, hiddenSize: number, seed: number): GruLayer {
  return {
    kind: 'gru',
    inputSize,
    hiddenSize,
    W: weights(3 * hiddenSize * inputSize, seed),
    R: weights(3 * hiddenSize * hiddenSize, seed + 1),
    bW: weights(3 * hiddenSize, seed + 2),
    bR: weights(3 * hiddenSize, seed + 3),
    linearBeforeReset: true,
    activations: { f: { kind: 'sigmoid' }, g: { kind: 'tanh' } },
  };
}

function dense(inputSize: number, outputSize: number, seed: number): DenseLayer {
  return {
    kind: 'dense',
    inputSize,
    outputSize,
    W: weights(outputSize * inputSize, seed),
    b: weights(outputSize, seed + 1),
    activation: { kind: 'sigmoid' },
  };
}

/** A 1-layer LSTM (3 inputs, 4 units) with a sigmoid dense head of 2 outputs. */
export function tinyLstm(seed = 7): Model {
  return {
    name: 'tiny',
    version: '1',
    source: 'test',
    inputs: [{ name: 'x', size: 3 }],
    branches: [{ input: 'x', layers: [lstm(3, 4, seed)] }],
    head: [dense(4, 2, seed + 10)],
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
      { input: 'a', layers: [lstm(2, 3, 21)] },
      { input: 'b', layers: [gru(1, 2, 31)] },
    ],
    head: [dense(5, 1, 41)],
  };
}

/** A 1-layer LSTM (4 inputs, 4 units) with a 2-output head ending in `activation` (sigmoid by default). */
export function fourInputLstm(activation: DenseLayer['activation'] = { kind: 'sigmoid' }): Model {
  return {
    name: 'four',
    version: '1',
    source: 'test',
    inputs: [{ name: 'x', size: 4 }],
    branches: [{ input: 'x', layers: [lstm(4, 4, 51)] }],
    head: [{ ...dense(4, 2, 61), activation }],
  };
}
