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
import type { LstmLayer } from '../../src/model/types.js';
import { cases, compare, compareSession, dense, maxAbsDiff, randomInputs, single } from './kernelCases.js';
import { prng, randomArray, randomLstm } from './modelTestUtils.js';

/** A path where no native addon is, so that 'auto' cannot pick the native kernel. */
const MISSING_ADDON = 'test/no-such-dir/cellstream-native.node';

/** The contract: outputs within 1e-6 of the reference (float32 kernels against its float64 sums). */
const TOLERANCE = 1e-6;

const module = simd128Module();
const wasm = module ? createWasmKernel(module) : undefined;

// Node ≥ 20.19 (package.json engines) always has WebAssembly SIMD128; its absence is a failure
// here, not a reason to skip the kernel's tests (the fallback has tests of its own).
it('has the WebAssembly SIMD128 kernel on this runtime', () => {
  expect(wasm).toBeDefined();
});

describe('wasm SIMD128 kernel against the reference', () => {
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
    const auto = selectKernel({ kernel: 'wasm', ort: 'off' });
    expect(auto.name).toBe('wasm-simd128');
    expect(Math.max(...compare(auto, softplus, 3, 5))).toBe(0);
    const softplusHead: LstmLayer = randomLstm(4, 6, prng(21));
    const headModel = single(4, [softplusHead], [dense(6, 2, { kind: 'softplus' }, prng(22))]);
    expect(wasmSupports(headModel)).toBe(false);
    expect(Math.max(...compare(auto, headModel, 2, 3))).toBe(0);
  });
});

describe('kernel sessions: states resident, addressed by slot', () => {
  const kernels: [string, Kernel][] = [
    ['wasm', wasm!],
    ['reference', referenceKernel],
  ];
  for (const [kname, kernel] of kernels) {
    describe(kname, () => {
      for (const [name, build] of cases.slice(0, 13)) {
        it(`${name}: scattered slots, 1 to ~40 keys a step, within 1e-6 of the reference`, () => {
          const model = build();
          for (const keys of [1, 3, 40]) {
            const worst = compareSession(kernel!, model, keys, 8);
            if (kname === 'reference') expect(worst).toBe(0);
            else expect(worst, `${keys} keys`).toBeLessThanOrEqual(TOLERANCE);
          }
        });
      }

      it('steps more keys than one wasm run takes', () => {
        expect(compareSession(kernel!, cases[0][1](), 300, 2)).toBeLessThanOrEqual(TOLERANCE);
      });

      it('writes, resets and reads back a slot, and refuses slots outside the capacity', () => {
        const model = cases[1][1]();
        const S = stateSize(model);
        const session = kernel!.session(model, 4);
        const state = randomArray(S, prng(40));
        session.writeState(2, state);
        const back = new Float32Array(S);
        session.readState(2, back);
        expect(Array.from(back)).toEqual(Array.from(state));
        const x = [randomArray(5, prng(41))];
        const want = state.slice();
        const out = referenceKernel.stepBatch(model, want, x, 1);
        const got = session.stepSlots([2], x, 1);
        expect(maxAbsDiff(out, got)).toBeLessThanOrEqual(TOLERANCE);
        session.writeState(2, []);
        session.readState(2, back);
        expect(back.every((v) => v === 0)).toBe(true);
        expect(() => session.stepSlots([4], x, 1)).toThrow(RangeError);
        expect(() => session.stepSlots([-1], x, 1)).toThrow(RangeError);
        expect(() => session.readState(1.5, back)).toThrow(RangeError);
        expect(() => session.writeState(0, new Float32Array(S + 1))).toThrow(RangeError);
        expect(() => session.stepSlots([0, 1], x, 2)).toThrow(RangeError);
        expect(() => kernel!.session(model, 0)).toThrow(RangeError);
      });
    });
  }

  it('hands a model the wasm kernel cannot run (softplus) to a reference session', () => {
    const softplus = single(4, [
      randomLstm(4, 6, prng(20), {
        activations: { f: { kind: 'sigmoid' }, g: { kind: 'softplus' }, h: { kind: 'tanh' } },
      }),
    ]);
    expect(compareSession(selectKernel(), softplus, 5, 4)).toBe(0);
  });
});

describe('kernel selection and fallback', () => {
  afterEach(() => {
    delete process.env.CELLSTREAM_KERNEL;
  });

  it('defaults to the wasm kernel where WebAssembly SIMD exists and the native kernel does not load', () => {
    expect(selectKernel({ ort: 'off', nativeAddon: MISSING_ADDON }).name).toBe(
      module ? 'wasm-simd128' : 'js-reference',
    );
  });

  it('falls back to the reference when SIMD is unavailable, with its exact results', () => {
    const fallback = selectKernel({ simd: false, ort: 'off', nativeAddon: MISSING_ADDON });
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
