import { afterEach, describe, expect, it, vi } from 'vitest';
import { stateSize } from '../../src/model/index.js';
import {
  createWasmKernel,
  type Kernel,
  referenceKernel,
  selectKernel,
  simd128Module,
} from '../../src/model/kernels/index.js';
import { ortGraphSupports } from '../../src/model/kernels/ort/graph.js';
import { createOrtKernel, flopsPerKey, loadOrt } from '../../src/model/kernels/ort/ortKernel.js';
import { withLargeBatches } from '../../src/model/kernels/select.js';
import { cases, compare, dense, randomInputs, single } from './kernelCases.js';
import { prng, randomLstm } from './modelTestUtils.js';

const TOLERANCE = 1e-6;
const ort = loadOrt();
const ortKernel = ort instanceof Error ? undefined : createOrtKernel(ort);
const module = simd128Module();

// onnxruntime-node is a devDependency that `npm ci` installs, so the suite requires it; the
// fallback when it is missing in production is tested below by simulating the failed load.
it('loads onnxruntime-node (a devDependency) for these tests', () => {
  expect(ort).not.toBeInstanceOf(Error);
});

/** Where no native addon is: these tests are about ORT over the portable kernel. */
const NO_NATIVE = 'test/no-such-dir/cellstream-native.node';

describe('ONNX Runtime kernel against the reference', () => {
  for (const [name, build] of cases) {
    it(`${name}: batches of 1, 3, 16 and 257 over 12 steps`, () => {
      const model = build();
      expect(ortGraphSupports(model)).toBe(true);
      const seen: string[] = [];
      for (const batch of [1, 3, 16, 257]) {
        const worst = Math.max(...compare(ortKernel!, model, batch, 12));
        seen.push(`B=${batch} ${worst.toExponential(2)}`);
        expect(worst, `batch ${batch}`).toBeLessThanOrEqual(TOLERANCE);
      }
      console.log(`${name}: max abs output error ${seen.join(', ')}`);
    });
  }

  it('takes states that are a view into a larger buffer, and plain-array inputs', () => {
    const model = cases[0][1]();
    const S = stateSize(model);
    const big = new Float32Array(5 * S);
    const view = big.subarray(S, 4 * S);
    const ref = new Float32Array(3 * S);
    const x = randomInputs(model, 3, prng(4));
    const want = referenceKernel.stepBatch(model, ref, x, 3);
    const got = ortKernel!.stepBatch(model, view, [Array.from(x[0])], 3);
    expect(Math.max(...want.map((v, i) => Math.abs(v - got[i])))).toBeLessThanOrEqual(TOLERANCE);
    expect(Math.max(...ref.map((v, i) => Math.abs(v - view[i])))).toBeLessThanOrEqual(1e-5);
    expect(big.subarray(0, S).every((v) => v === 0)).toBe(true);
    expect(big.subarray(4 * S).every((v) => v === 0)).toBe(true);
  });

  it('leaves heads it cannot express to the other kernels', () => {
    const model = single(
      3,
      [randomLstm(3, 4, prng(2))],
      [dense(4, 2, { kind: 'affine', alpha: 2, beta: 1 }, prng(3))],
    );
    expect(ortGraphSupports(model)).toBe(false);
    const auto = selectKernel({ ort: 'auto', ortMinFlops: 0 });
    expect(Math.max(...compare(auto, model, 64, 3))).toBeLessThanOrEqual(TOLERANCE);
  });
});

describe('large batches to ONNX Runtime, with fallback', () => {
  afterEach(() => {
    delete process.env.CELLSTREAM_ORT;
    vi.restoreAllMocks();
  });

  it('with ort: auto, takes the batches worth its fixed cost when onnxruntime-node loads', () => {
    // On the wasm kernel: the native one, where it loads, would take the small batches instead.
    const auto = selectKernel({ ort: 'auto', nativeAddon: NO_NATIVE });
    if (!ortKernel || !module) {
      expect(auto.name).not.toMatch(/onnxruntime/);
      return;
    }
    expect(auto.name).toMatch(/^wasm-simd128\+onnxruntime-node /);
    const model = cases[0][1](); // I=16, H=64: ~41 kFLOP a key, so 25 keys reach 1e6
    expect(flopsPerKey(model)).toBe(2 * 4 * 64 * 80);
    const wasm = createWasmKernel(module);
    for (const [batch, same] of [
      [24, wasm],
      [25, ortKernel],
      [257, ortKernel],
    ] as const) {
      const rnd = prng(batch);
      const S = stateSize(model);
      const a = new Float32Array(batch * S);
      const b = new Float32Array(batch * S);
      for (let t = 0; t < 3; t++) {
        const x = randomInputs(model, batch, rnd);
        expect(Array.from(auto.stepBatch(model, a, x, batch)), `batch ${batch}`).toEqual(
          Array.from(same.stepBatch(model, b, x, batch)),
        );
      }
      expect(Array.from(a)).toEqual(Array.from(b));
    }
  });

  it('is off by default (results must not depend on batching), by ort: off, and with the reference', () => {
    expect(selectKernel().name).not.toMatch(/onnxruntime/);
    expect(selectKernel({ ort: 'off' }).name).not.toMatch(/onnxruntime/);
    process.env.CELLSTREAM_ORT = 'off';
    expect(selectKernel({ ort: undefined }).name).not.toMatch(/onnxruntime/);
    if (ortKernel) {
      process.env.CELLSTREAM_ORT = 'auto';
      expect(selectKernel().name).toMatch(/onnxruntime/);
    }
    process.env.CELLSTREAM_ORT = 'maybe';
    expect(() => selectKernel()).toThrow(/CELLSTREAM_ORT/);
    delete process.env.CELLSTREAM_ORT;
    expect(selectKernel({ kernel: 'js', ort: 'auto' }).name).toBe('js-reference');
  });

  it('falls back to the portable kernel when onnxruntime-node is missing, with its exact results', () => {
    const missing = loadOrt('onnxruntime-node-not-installed');
    expect(missing).toBeInstanceOf(Error);
    const kernel = selectKernel({
      ort: 'auto',
      ortModule: 'onnxruntime-node-not-installed',
      ortMinFlops: 0,
      nativeAddon: NO_NATIVE,
    });
    expect(kernel.name).toBe(module ? 'wasm-simd128' : 'js-reference');
    const plain = selectKernel({ ort: 'off', nativeAddon: NO_NATIVE });
    const model = cases[0][1]();
    expect(compare(kernel, model, 64, 3)).toEqual(compare(plain, model, 64, 3));
  });

  it('keeps a model on the portable kernel once ORT fails on it, and says so', () => {
    const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    let calls = 0;
    const failing: Kernel = {
      name: 'failing',
      supports: () => true,
      stepBatch() {
        calls++;
        throw new Error('native library went away');
      },
      session: () => {
        throw new Error('unused');
      },
    };
    const kernel = withLargeBatches(referenceKernel, failing, 0);
    const model = cases[1][1]();
    // Exactly the reference's numbers: the failed step left the states untouched.
    expect(Math.max(...compare(kernel, model, 4, 5))).toBe(0);
    expect(calls).toBe(1);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0][0])).toMatch(/failing failed on model k \(native library went away\)/);
  });

  it('passes the caller size errors through without giving up on ORT', () => {
    let calls = 0;
    const sizes: Kernel = {
      ...referenceKernel,
      name: 'sizes',
      stepBatch(...args) {
        calls++;
        return referenceKernel.stepBatch(...args);
      },
    };
    const kernel = withLargeBatches(referenceKernel, sizes, 0);
    const model = cases[1][1]();
    expect(() => kernel.stepBatch(model, new Float32Array(3), [new Float32Array(5)], 1)).toThrow(RangeError);
    kernel.stepBatch(model, new Float32Array(stateSize(model)), [new Float32Array(5)], 1);
    expect(calls).toBe(2);
  });
});
