import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { stateSize } from '../../src/model/index.js';
import {
  createWasmKernel,
  type Kernel,
  referenceKernel,
  selectKernel,
  simd128Module,
  wasmSupports,
} from '../../src/model/kernels/index.js';
import type {
  Activation,
  DenseLayer,
  HeadActivation,
  LstmLayer,
  Model,
  RecurrentLayer,
} from '../../src/model/types.js';
import { prng, randomArray, randomGru, randomLstm } from './modelTestUtils.js';

/** The contract: outputs within 1e-6 of the reference (float32 kernels against its float64 sums). */
const TOLERANCE = 1e-6;

const module = simd128Module();
const wasm = module ? createWasmKernel(module) : undefined;

function dense(
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

function single(I: number, layers: RecurrentLayer[], head: DenseLayer[] = []): Model {
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
const cases: [string, () => Model][] = [
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

function randomInputs(model: Model, batch: number, rnd: () => number): Float32Array[] {
  return model.inputs.map((i) => randomArray(batch * i.size, rnd, 1.5));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Steps both kernels from the zero state; returns the worst output error per step. */
function compare(kernel: Kernel, model: Model, batch: number, steps: number, seed = 99): number[] {
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

describe.skipIf(!wasm)('wasm SIMD128 kernel against the reference', () => {
  for (const [name, build] of cases) {
    it(`${name}: batches of 1, 3, 16 and 257 over 12 steps`, () => {
      const model = build();
      expect(wasmSupports(model)).toBe(true);
      const seen: string[] = [];
      for (const batch of [1, 3, 16, 257]) {
        const worst = Math.max(...compare(wasm!, model, batch, 12));
        seen.push(`B=${batch} ${worst.toExponential(2)}`);
        expect(worst, `batch ${batch}`).toBeLessThanOrEqual(TOLERANCE);
      }
      console.log(`${name}: max abs output error ${seen.join(', ')}`);
    });
  }

  it('steps every key of a batch exactly as it steps that key alone', () => {
    const model = cases[10][1]();
    const rnd = prng(5);
    const S = stateSize(model);
    const batch = 5;
    const states = randomArray(batch * S, rnd);
    const inputs = randomInputs(model, batch, rnd);
    const together = states.slice();
    const out = wasm!.stepBatch(model, together, inputs, batch);
    for (let b = 0; b < batch; b++) {
      const one = states.slice(b * S, (b + 1) * S);
      const sliced = model.inputs.map((inp, i) => inputs[i].slice(b * inp.size, (b + 1) * inp.size));
      const o = wasm!.stepBatch(model, one, sliced, 1);
      expect(Array.from(one)).toEqual(Array.from(together.slice(b * S, (b + 1) * S)));
      expect(Array.from(o)).toEqual(Array.from(out.slice(b * o.length, (b + 1) * o.length)));
    }
  });

  it('stays within 1e-6 of the reference at every step of 1000-step sequences', () => {
    // Each kernel carries its own state the whole way, so this bounds accumulated drift, not
    // just one step's rounding.
    const report: string[] = [];
    for (const [name, build] of [cases[0], cases[7], cases[10], cases[11]]) {
      const errors = compare(wasm!, build(), 3, 1000, 7);
      const worst = Math.max(...errors);
      report.push(`${name}: ${worst.toExponential(2)}`);
      expect(worst, name).toBeLessThanOrEqual(TOLERANCE);
    }
    console.log(`max abs output error over 1000 steps — ${report.join('; ')}`);
  });

  it('accepts inputs that are plain arrays', () => {
    const model = cases[1][1]();
    const S = stateSize(model);
    const a = new Float32Array(2 * S);
    const b = new Float32Array(2 * S);
    const x = Array.from(randomArray(10, prng(3)));
    const want = wasm!.stepBatch(model, a, [new Float32Array(x)], 2);
    expect(Array.from(wasm!.stepBatch(model, b, [x], 2))).toEqual(Array.from(want));
  });

  it('rejects wrong sizes as the reference does', () => {
    const model = cases[1][1]();
    expect(() => wasm!.stepBatch(model, new Float32Array(3), [new Float32Array(5)], 1)).toThrow(RangeError);
    expect(() =>
      wasm!.stepBatch(model, new Float32Array(stateSize(model)), [new Float32Array(4)], 1),
    ).toThrow(RangeError);
  });

  it('leaves softplus to the reference, bit for bit', () => {
    const softplus = single(4, [
      randomLstm(4, 6, prng(20), {
        activations: { f: { kind: 'sigmoid' }, g: { kind: 'softplus' }, h: { kind: 'tanh' } },
      }),
    ]);
    expect(wasmSupports(softplus)).toBe(false);
    const auto = selectKernel({ kernel: 'auto' });
    expect(auto.name).toBe('wasm-simd128');
    expect(Math.max(...compare(auto, softplus, 3, 5))).toBe(0);
    const softplusHead: LstmLayer = randomLstm(4, 6, prng(21));
    const headModel = single(4, [softplusHead], [dense(6, 2, { kind: 'softplus' }, prng(22))]);
    expect(wasmSupports(headModel)).toBe(false);
    expect(Math.max(...compare(auto, headModel, 2, 3))).toBe(0);
  });
});

describe('kernel selection and fallback', () => {
  afterEach(() => {
    delete process.env.CELLSTREAM_KERNEL;
  });

  it('defaults to the wasm kernel where WebAssembly SIMD exists', () => {
    expect(selectKernel().name).toBe(module ? 'wasm-simd128' : 'js-reference');
  });

  it('falls back to the reference when SIMD is unavailable, with its exact results', () => {
    const fallback = selectKernel({ simd: false });
    expect(fallback.name).toBe('js-reference');
    for (const [, build] of cases.slice(0, 12)) expect(Math.max(...compare(fallback, build(), 3, 4))).toBe(0);
    expect(() => selectKernel({ kernel: 'wasm', simd: false })).toThrow(/SIMD/);
  });

  it('is forced to the reference by option or by CELLSTREAM_KERNEL=js', () => {
    expect(selectKernel({ kernel: 'js' }).name).toBe('js-reference');
    process.env.CELLSTREAM_KERNEL = 'js';
    expect(selectKernel().name).toBe('js-reference');
    process.env.CELLSTREAM_KERNEL = 'vectorised';
    expect(() => selectKernel()).toThrow(/CELLSTREAM_KERNEL/);
  });
});

describe('the committed wasm artifact', () => {
  it('is what assembly/kernel.ts builds to with the pinned AssemblyScript', () => {
    const out = execFileSync('node', ['scripts/build-wasm.mjs', '--check'], { encoding: 'utf8' });
    expect(out).toMatch(/matches its source/);
  }, 60_000);
});
