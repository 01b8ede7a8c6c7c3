import { expect } from 'vitest';
import { stateSize } from '../../src/model/index.js';
import { type Kernel, referenceKernel } from '../../src/model/kernels/index.js';
import type { Activation, DenseLayer, HeadActivation, Model, RecurrentLayer } from '../../src/model/types.js';
import { prng, randomArray, randomGru, randomLstm } from './modelTestUtils.js';

export function dense(
  inputSize: number,
  outputSize: number,
  activation: HeadActivation,
  rnd: () => number,
): DenseLayer {
  return {
    kind: 'dense',
    inputSize,
    outputSize,
    W: randomArray(outputSize * inputSize, rnd),
    b: randomArray(outputSize, rnd),
    activation,
  };
}

export function single(I: number, layers: RecurrentLayer[], head: DenseLayer[] = []): Model {
  return {
    name: 'k',
    source: 'test',
    inputs: [{ name: 'x', size: I }],
    branches: [{ input: 'x', layers }],
    head,
  };
}

const hardSigmoid: Activation = { kind: 'hard_sigmoid', alpha: 0.2, beta: 0.5 };

/** Every variant the reference runs that the kernels must match, built from one seed each. */
export const cases: [string, () => Model][] = [
  ['LSTM plain', () => single(16, [randomLstm(16, 64, prng(1))])],
  ['LSTM, H not a multiple of 4', () => single(5, [randomLstm(5, 7, prng(2))])],
  [
    'LSTM with peepholes',
    () => {
      const rnd = prng(3);
      const H = 10;
      const peephole = { i: randomArray(H, rnd), f: randomArray(H, rnd), o: randomArray(H, rnd) };
      return single(6, [randomLstm(6, H, rnd, { peephole })]);
    },
  ],
  ['LSTM with input_forget', () => single(4, [randomLstm(4, 12, prng(4), { inputForget: true })])],
  ['LSTM with clip', () => single(8, [randomLstm(8, 16, prng(5), { clip: 0.7 })])],
  [
    'LSTM with hard_sigmoid gates and relu candidate',
    () =>
      single(3, [
        randomLstm(3, 9, prng(6), {
          activations: { f: hardSigmoid, g: { kind: 'relu' }, h: { kind: 'tanh' } },
        }),
      ]),
  ],
  [
    'LSTM with the rest of the activation set',
    () =>
      single(3, [
        randomLstm(3, 8, prng(7), {
          activations: {
            f: { kind: 'hard_sigmoid', alpha: 1 / 6, beta: 0.5 },
            g: { kind: 'scaled_tanh', alpha: 0.9, beta: 1.1 },
            h: { kind: 'softsign' },
          },
        }),
        randomLstm(8, 8, prng(8), {
          activations: {
            f: { kind: 'sigmoid' },
            g: { kind: 'elu', alpha: 0.7 },
            h: { kind: 'leaky_relu', alpha: 0.1 },
          },
        }),
        randomLstm(8, 4, prng(9), {
          activations: {
            f: { kind: 'affine', alpha: 0.3, beta: 0.4 },
            g: { kind: 'thresholded_relu', alpha: 0.2 },
            h: { kind: 'linear' },
          },
        }),
      ]),
  ],
  ['GRU, linearBeforeReset', () => single(16, [randomGru(16, 64, prng(10))])],
  [
    'GRU, reset before the product',
    () => single(5, [randomGru(5, 11, prng(11), { linearBeforeReset: false })]),
  ],
  [
    'GRU with clip and hard_sigmoid',
    () =>
      single(4, [
        randomGru(4, 6, prng(12), { clip: 0.5, activations: { f: hardSigmoid, g: { kind: 'tanh' } } }),
      ]),
  ],
  [
    'stacked LSTM, GRU, LSTM with a dense head',
    () => {
      const rnd = prng(13);
      return single(
        6,
        [randomLstm(6, 12, rnd), randomGru(12, 9, rnd, { linearBeforeReset: false }), randomLstm(9, 20, rnd)],
        [dense(20, 3, { kind: 'sigmoid' }, rnd)],
      );
    },
  ],
  [
    'two branches into a relu, softmax head',
    () => {
      const rnd = prng(14);
      return {
        name: 'k',
        source: 'test',
        inputs: [
          { name: 'a', size: 4 },
          { name: 'b', size: 3 },
        ],
        branches: [
          { input: 'a', layers: [randomLstm(4, 6, rnd)] },
          { input: 'b', layers: [randomGru(3, 5, rnd), randomGru(5, 8, rnd)] },
        ],
        head: [dense(14, 10, { kind: 'relu' }, rnd), dense(10, 5, { kind: 'softmax' }, rnd)],
      };
    },
  ],
  [
    'dense heads: tanh, linear, hard_sigmoid',
    () => {
      const rnd = prng(15);
      return single(
        3,
        [randomLstm(3, 33, rnd)],
        [
          dense(33, 7, { kind: 'tanh' }, rnd),
          dense(7, 6, { kind: 'linear' }, rnd),
          dense(6, 2, hardSigmoid, rnd),
        ],
      );
    },
  ],
  [
    'LSTM H=256',
    () => single(16, [randomLstm(16, 256, prng(16), { R: randomArray(4 * 256 * 256, prng(17), 0.1) })]),
  ],
];

export function randomInputs(model: Model, batch: number, rnd: () => number): Float32Array[] {
  return model.inputs.map((i) => randomArray(batch * i.size, rnd, 1.5));
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Steps both kernels from the zero state; returns the worst output error per step. */
export function compare(kernel: Kernel, model: Model, batch: number, steps: number, seed = 99): number[] {
  const rnd = prng(seed);
  const S = stateSize(model);
  const ref = new Float32Array(batch * S);
  const got = new Float32Array(batch * S);
  const errors: number[] = [];
  for (let t = 0; t < steps; t++) {
    const inputs = randomInputs(model, batch, rnd);
    const want = referenceKernel.stepBatch(model, ref, inputs, batch);
    const have = kernel.stepBatch(model, got, inputs, batch);
    expect(have.length).toBe(want.length);
    errors.push(maxAbsDiff(want, have));
  }
  return errors;
}

/**
 * Steps `kernel`'s session over `steps` rounds, each round a random subset of `keys` keys (slots
 * scattered over the capacity), against the reference stepping each key's own state; returns
 * the worst output error and checks the states read back (within 1e-5: states carry no head).
 */
export function compareSession(kernel: Kernel, model: Model, keys: number, steps: number, seed = 31): number {
  const rnd = prng(seed);
  const S = stateSize(model);
  const capacity = 2 * keys + 3;
  const session = kernel.session(model, capacity);
  expect(session.stateSize).toBe(S);
  const slotOf = Array.from({ length: keys }, (_, k) => capacity - 1 - 2 * k);
  const ref = Array.from({ length: keys }, () => new Float32Array(S));
  let worst = 0;
  for (let t = 0; t < steps; t++) {
    const chosen = Array.from({ length: keys }, (_, k) => k).filter(() => rnd() < 0.7);
    if (chosen.length === 0) continue;
    const inputs = randomInputs(model, chosen.length, rnd);
    const out = session.stepSlots(
      chosen.map((k) => slotOf[k]),
      inputs,
      chosen.length,
    );
    expect(out.length).toBe(chosen.length * session.outputSize);
    chosen.forEach((k, b) => {
      const x = model.inputs.map((inp, i) => inputs[i].slice(b * inp.size, (b + 1) * inp.size));
      const want = referenceKernel.stepBatch(model, ref[k], x, 1);
      const O = want.length;
      worst = Math.max(worst, maxAbsDiff(want, out.subarray(b * O, (b + 1) * O)));
    });
  }
  const state = new Float32Array(S + 1);
  for (let k = 0; k < keys; k++) {
    session.readState(slotOf[k], state, 1);
    for (let j = 0; j < S; j++) expect(Math.abs(state[1 + j] - ref[k][j])).toBeLessThanOrEqual(1e-5);
  }
  return worst;
}
