import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KernelUnavailableError } from '../../src/errors.js';
import { stateSize } from '../../src/model/index.js';
import {
  createNativeKernel,
  createWasmKernel,
  type Kernel,
  loadNative,
  type NativeAddon,
  nativeSupports,
  selectKernel,
  simd128Module,
} from '../../src/model/kernels/index.js';
import type { Model } from '../../src/model/types.js';
import { cases, compare, compareSession, dense, randomInputs, single } from './kernelCases.js';
import { prng, randomArray, randomGru, randomLstm } from './modelTestUtils.js';

/** The contract every kernel keeps: outputs within 1e-6 of the float64 reference. */
const TOLERANCE = 1e-6;

// Whether this machine can run the kernel: x86-64 with AVX2 and FMA (Linux reports the flags).
const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
const cpuRunsIt = process.arch === 'x64' && /\bavx2\b/.test(cpuinfo) && /\bfma\b/.test(cpuinfo);

// Every test here runs on an addon this file builds from native/kernel.c, not on whatever
// `npm run build` left in build/native.
const dir = mkdtempSync(join(tmpdir(), 'cellstream-native-'));
const addonPath = join(dir, 'cellstream-native.node');
let addon: NativeAddon | Error;
let native: Kernel;

beforeAll(() => {
  execFileSync('node', ['scripts/build-native.mjs', '--strict', '--out', dir], { stdio: 'pipe' });
  addon = loadNative(addonPath);
  if (!(addon instanceof Error)) native = createNativeKernel(addon);
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MISSING = join(tmpdir(), 'cellstream-no-such-dir', 'cellstream-native.node');

/** Models the native kernel runs, beyond the shared cases it supports. */
const nativeCases: [string, () => Model][] = [
  ...cases.filter(([, build]) => nativeSupports(build())),
  [
    'stacked LSTM, LSTM, GRU with linear, relu, sigmoid, tanh, softmax heads',
    () => {
      const rnd = prng(50);
      return single(
        7,
        [randomLstm(7, 24, rnd), randomLstm(24, 13, rnd), randomGru(13, 19, rnd)],
        [
          dense(19, 9, { kind: 'linear' }, rnd),
          dense(9, 17, { kind: 'relu' }, rnd),
          dense(17, 8, { kind: 'sigmoid' }, rnd),
          dense(8, 5, { kind: 'tanh' }, rnd),
          dense(5, 4, { kind: 'softmax' }, rnd),
        ],
      );
    },
  ],
  [
    'three branches (LSTM; GRU, GRU; LSTM H=64) into a sigmoid head',
    () => {
      const rnd = prng(51);
      return {
        name: 'k',
        source: 'test',
        inputs: [
          { name: 'a', size: 4 },
          { name: 'b', size: 3 },
          { name: 'c', size: 16 },
        ],
        branches: [
          { input: 'a', layers: [randomLstm(4, 6, rnd)] },
          { input: 'b', layers: [randomGru(3, 9, rnd), randomGru(9, 8, rnd)] },
          { input: 'c', layers: [randomLstm(16, 64, rnd)] },
        ],
        head: [dense(78, 3, { kind: 'sigmoid' }, rnd)],
      };
    },
  ],
  [
    'LSTM with peepholes and input_forget, H=40, under a stacked plain LSTM',
    () => {
      const rnd = prng(52);
      const H = 40;
      const peephole = { i: randomArray(H, rnd), f: randomArray(H, rnd), o: randomArray(H, rnd) };
      return single(
        11,
        [randomLstm(11, H, rnd, { peephole, inputForget: true }), randomLstm(H, 24, rnd)],
        [],
      );
    },
  ],
  [
    'GRU with the reset before the product, I=16 H=64, over a reset-after GRU (H=21) into a softmax head',
    () => {
      const rnd = prng(53);
      return single(
        16,
        [randomGru(16, 64, rnd, { linearBeforeReset: false }), randomGru(64, 21, rnd)],
        [dense(21, 4, { kind: 'softmax' }, rnd)],
      );
    },
  ],
];

describe('building the addon', () => {
  it('compiles native/kernel.c into a loadable addon', () => {
    expect(statSync(addonPath).size).toBeGreaterThan(0);
    // Loading proves the file is a Node-API module; whether this CPU runs it is the next test.
    if (addon instanceof Error) expect(addon.message).toMatch(/AVX2/);
  });

  it('loads and reports itself available exactly where the CPU has AVX2 and FMA', () => {
    expect(addon instanceof Error).toBe(!cpuRunsIt);
  });

  it.runIf(cpuRunsIt)(
    'takes the AVX-512 tiles exactly where the CPU has AVX-512F, and measures an FMA peak',
    () => {
      const a = addon as NativeAddon;
      const asked = process.env.CELLSTREAM_NATIVE_ISA === 'avx512';
      expect(a.isa?.()).toBe(asked && /\bavx512f\b/.test(cpuinfo) ? 'avx512' : 'avx2');
      expect(a.fmaPeak?.(20)).toBeGreaterThan(0);
    },
  );

  it('prints one line and exits 0 without a compiler, so the build goes on (1 with --strict)', () => {
    const out = join(dir, 'nocc');
    const env = { ...process.env, CC: join(dir, 'no-such-cc') };
    const r = spawnSync('node', ['scripts/build-native.mjs', '--out', out], { env, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/native kernel not built \(no C compiler.*\); the wasm kernel will be used/);
    expect(existsSync(join(out, 'cellstream-native.node'))).toBe(false);
    const strict = spawnSync('node', ['scripts/build-native.mjs', '--strict', '--out', out], { env });
    expect(strict.status).toBe(1);
  });

  it('reports a compiler error in one line and leaves no addon behind', () => {
    const out = join(dir, 'badcc');
    // `false` is a "compiler" that fails, as a broken toolchain would.
    const env = { ...process.env, CC: 'false' };
    const r = spawnSync('node', ['scripts/build-native.mjs', '--out', out], { env, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/native kernel not built \(false failed/);
    expect(existsSync(join(out, 'cellstream-native.node'))).toBe(false);
  });
});

describe.runIf(cpuRunsIt)('native kernel against the reference', () => {
  it('runs the LSTM (peepholes and input_forget too), the GRU with the reset after or before the product, heads and branches; not the rest', () => {
    const supported = cases.filter(([, build]) => nativeSupports(build())).map(([name]) => name);
    expect(supported).toEqual([
      'LSTM plain',
      'LSTM, H not a multiple of 4',
      'LSTM with peepholes',
      'LSTM with input_forget',
      'GRU, linearBeforeReset',
      'GRU, reset before the product',
      'stacked LSTM, GRU, LSTM with a dense head',
      'two branches into a relu, softmax head',
      'LSTM H=256',
    ]);
  });

  for (const [name, build] of nativeCases) {
    it(`${name}: batches of 1, 2, 3, 17 and 256 over 12 steps, within 1e-6`, () => {
      const model = build();
      expect(nativeSupports(model)).toBe(true);
      const seen: string[] = [];
      for (const batch of [1, 2, 3, 17, 256]) {
        const worst = Math.max(...compare(native, model, batch, 12));
        seen.push(`B=${batch} ${worst.toExponential(2)}`);
        expect(worst, `batch ${batch}`).toBeLessThanOrEqual(TOLERANCE);
      }
      console.log(`native ${name}: max abs output error ${seen.join(', ')}`);
    });
  }

  it('stays within 1e-6 of the reference at every step of 1000-step sequences', () => {
    const report: string[] = [];
    for (const [name, build] of [
      nativeCases[0],
      nativeCases[2],
      nativeCases[4],
      nativeCases[5],
      nativeCases[6],
      nativeCases[9],
      nativeCases[10],
      nativeCases[12],
    ]) {
      const worst = Math.max(...compare(native, build(), 3, 1000, 7));
      report.push(`${name}: ${worst.toExponential(2)}`);
      expect(worst, name).toBeLessThanOrEqual(TOLERANCE);
    }
    console.log(`native, max abs output error over 1000 steps — ${report.join('; ')}`);
  });

  for (const [name, build] of nativeCases) {
    it(`${name}: a session, scattered slots, 1 to ~40 keys a step, more than one run takes`, () => {
      const model = build();
      for (const keys of [1, 3, 40]) {
        expect(compareSession(native, model, keys, 8), `${keys} keys`).toBeLessThanOrEqual(TOLERANCE);
      }
      expect(compareSession(native, model, 300, 2)).toBeLessThanOrEqual(TOLERANCE);
    });
  }

  it('rejects wrong sizes and slots as the other kernels do', () => {
    const model = nativeCases[1][1]();
    const S = stateSize(model);
    expect(() => native.stepBatch(model, new Float32Array(3), [new Float32Array(5)], 1)).toThrow(RangeError);
    expect(() => native.stepBatch(model, new Float32Array(S), [new Float32Array(4)], 1)).toThrow(RangeError);
    expect(() =>
      native.stepBatch(model, new Float32Array(S), [new Float32Array(5)], 1, new Float32Array(0)),
    ).toThrow(RangeError);
    const session = native.session(model, 4);
    const x = [randomArray(5, prng(41))];
    expect(() => session.stepSlots([4], x, 1)).toThrow(RangeError);
    expect(() => session.stepSlots([0, 1], x, 2)).toThrow(RangeError);
    expect(() => session.writeState(0, new Float32Array(S + 1))).toThrow(RangeError);
    expect(() => native.session(model, 0)).toThrow(RangeError);
  });

  it('refuses a malformed plan or step inside the addon, instead of reading past its buffers', () => {
    const a = addon as NativeAddon;
    const f = (n: number) => new Float32Array(n);
    expect(() => a.create(new Int32Array(3), [], f(1), new Int32Array(1), f(1), [f(1)])).toThrow(
      /bad descriptor/,
    );
    // One LSTM layer I=2, H=3 whose weights are one float short.
    const desc = Int32Array.from([1, 0, 1, 1, 6, 3, 4, 2, 2, 0, 2, 3, 0, -1, 0, 3, 0, 0, 3, 0]);
    expect(() => a.create(desc, [f(5 * 32 - 1), f(32)], f(12), new Int32Array(4), f(12), [f(8)])).toThrow(
      /weights of the wrong size/,
    );
    const plan = a.create(desc, [f(5 * 32), f(32)], f(12), new Int32Array(4), f(12), [f(8)]);
    expect(() => a.run(plan, 5)).toThrow(RangeError);
    const slots = new Int32Array(4);
    const planWithSlots = a.create(desc, [f(5 * 32), f(32)], f(12), slots, f(12), [f(8)]);
    slots[0] = 2; // the slab holds 2 keys
    expect(() => a.run(planWithSlots, 1)).toThrow(/slot outside/);
    expect(() => a.run(plan, 2, f(11))).toThrow(RangeError);
  });
});

describe.runIf(cpuRunsIt)('native kernel: a key gets the same bits in any batch', () => {
  /** Steps keys `order` (indices into the states) as one batch; returns their new states and outputs. */
  function stepSome(model: Model, states: Float32Array, inputs: Float32Array[], order: number[]) {
    const S = stateSize(model);
    const batchStates = new Float32Array(order.length * S);
    for (const [b, k] of order.entries()) batchStates.set(states.subarray(k * S, (k + 1) * S), b * S);
    const batchInputs = model.inputs.map((inp, i) => {
      const x = new Float32Array(order.length * inp.size);
      for (const [b, k] of order.entries())
        x.set(inputs[i].subarray(k * inp.size, (k + 1) * inp.size), b * inp.size);
      return x;
    });
    const out = native.stepBatch(model, batchStates, batchInputs, order.length);
    return { batchStates, out: out.slice() };
  }

  const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

  for (const index of [0, 2, 3, 5, 6, 9, 10, 11, 12]) {
    it(`${index === 0 ? 'plain LSTM H=64' : nativeCases[index][0]}: alone, in pairs, in 3s, in 17s, all 256, reversed`, () => {
      const model = nativeCases[index][1]();
      const rnd = prng(60 + index);
      const S = stateSize(model);
      const N = 256;
      const states = randomArray(N * S, rnd);
      const inputs = randomInputs(model, N, rnd);
      const all = Array.from({ length: N }, (_, k) => k);
      const whole = stepSome(model, states, inputs, all);
      const O = whole.out.length / N;
      const check = (order: number[]) => {
        const got = stepSome(model, states, inputs, order);
        order.forEach((k, b) => {
          expect(bits(got.batchStates.subarray(b * S, (b + 1) * S)), `key ${k} state`).toEqual(
            bits(whole.batchStates.subarray(k * S, (k + 1) * S)),
          );
          expect(bits(got.out.subarray(b * O, (b + 1) * O)), `key ${k} output`).toEqual(
            bits(whole.out.subarray(k * O, (k + 1) * O)),
          );
        });
      };
      for (const k of [0, 1, 100, 255]) check([k]);
      check([7, 3]);
      check([200, 9, 41]);
      check(all.slice(50, 67));
      check(all.slice().reverse());
      // A session, slots in another order, agrees with stepBatch bit for bit.
      const session = native.session(model, N);
      for (let k = 0; k < N; k++) session.writeState(k, states.subarray(k * S, (k + 1) * S));
      const perm = all.slice(1).concat([0]);
      const slotInputs = model.inputs.map((inp, i) => {
        const x = new Float32Array(N * inp.size);
        for (const [b, k] of perm.entries())
          x.set(inputs[i].subarray(k * inp.size, (k + 1) * inp.size), b * inp.size);
        return x;
      });
      const out = session.stepSlots(perm, slotInputs, N);
      const state = new Float32Array(S);
      perm.forEach((k, b) => {
        expect(bits(out.subarray(b * O, (b + 1) * O))).toEqual(bits(whole.out.subarray(k * O, (k + 1) * O)));
        session.readState(k, state);
        expect(bits(state)).toEqual(bits(whole.batchStates.subarray(k * S, (k + 1) * S)));
      });
    });
  }
  // With CELLSTREAM_NATIVE_ISA=avx512 on a CPU with AVX-512F the default plan takes the 12-key zmm
  // tiles; a plan made with isa 'avx2' never does. Their lanes do the same operations, so the bits agree.
  it('gives the same bits on the AVX2 tiles as on the widest ones this CPU runs', () => {
    const avx2 = createNativeKernel(addon as NativeAddon, { isa: 'avx2' });
    const rnd = prng(71);
    for (const model of [
      single(16, [randomLstm(16, 128, rnd)], []),
      single(7, [randomGru(7, 44, rnd)], []),
      single(7, [randomGru(7, 44, rnd, { linearBeforeReset: false })], []),
    ]) {
      const S = stateSize(model);
      for (const n of [1, 12, 13, 30, 256]) {
        const states = randomArray(n * S, rnd);
        const inputs = randomInputs(model, n, rnd);
        const mine = states.slice();
        const theirs = states.slice();
        const a = native.stepBatch(model, mine, inputs, n).slice();
        const b = avx2.stepBatch(model, theirs, inputs, n);
        expect(bits(a), `${n} keys`).toEqual(bits(b));
        expect(bits(mine), `${n} keys`).toEqual(bits(theirs));
      }
    }
  });

  // Every tile shape the blocked product has (AVX-512: 12 keys; AVX2: 6, 5, 4, 3, 2, and a lone key
  // two panels at a time), key blocks of 96 and their remainder, the k loop in chunks of 128 rows
  // (H=256), GRU panels that straddle groups and a last panel of padding (H=19: 9 vectors; with
  // the reset before, 6 z/r vectors and 3 candidate vectors, both with padding; H=40: 5 groups).
  it('steps each of 256 keys alone and in batches of 2, 3, 5, 6, 7, 11, 12, 13, 25, 97 and 200 to the same bits', () => {
    const rnd = prng(70);
    const models: Model[] = [
      single(16, [randomLstm(16, 256, rnd)], []),
      single(5, [randomGru(5, 19, rnd), randomGru(19, 40, rnd)], []),
      single(9, [randomLstm(9, 33, rnd), randomGru(33, 64, rnd)], [dense(64, 3, { kind: 'softmax' }, rnd)]),
      single(
        5,
        [
          randomGru(5, 19, rnd, { linearBeforeReset: false }),
          randomGru(19, 40, rnd, { linearBeforeReset: false }),
        ],
        [],
      ),
      single(
        16,
        [randomGru(16, 256, rnd, { linearBeforeReset: false, R: randomArray(3 * 256 * 256, rnd, 0.1) })],
        [dense(256, 3, { kind: 'sigmoid' }, rnd)],
      ),
    ];
    for (const model of models) {
      const S = stateSize(model);
      const N = 256;
      const states = randomArray(N * S, rnd);
      const inputs = randomInputs(model, N, rnd);
      const all = Array.from({ length: N }, (_, k) => k);
      const whole = stepSome(model, states, inputs, all);
      const O = whole.out.length / N;
      for (const size of [1, 2, 3, 5, 6, 7, 11, 12, 13, 25, 97, 200]) {
        // Keys in a scrambled order, cut into batches of `size` (the last one shorter).
        const order = all.map((k) => (k * 37 + size) % N);
        for (let start = 0; start < N; start += size) {
          const batch = order.slice(start, start + size);
          const got = stepSome(model, states, inputs, batch);
          batch.forEach((k, b) => {
            const where = `${model.branches[0].layers[0].kind} H=${model.branches[0].layers[0].hiddenSize}, key ${k} in a batch of ${batch.length}`;
            expect(bits(got.batchStates.subarray(b * S, (b + 1) * S)), where).toEqual(
              bits(whole.batchStates.subarray(k * S, (k + 1) * S)),
            );
            expect(bits(got.out.subarray(b * O, (b + 1) * O)), where).toEqual(
              bits(whole.out.subarray(k * O, (k + 1) * O)),
            );
          });
        }
      }
    }
  }, 120_000);
});

describe('selecting the native kernel, and falling back without it', () => {
  afterEach(() => {
    delete process.env.CELLSTREAM_KERNEL;
  });
  const wasmModule = simd128Module();

  it.runIf(cpuRunsIt)(
    "'auto' picks it where the addon loads; models it does not run go to wasm, bit for bit",
    () => {
      const auto = selectKernel({ ort: 'off', nativeAddon: addonPath });
      expect(auto.name).toBe('native-avx2');
      const wasm = createWasmKernel(wasmModule!);
      for (const [name, build] of cases.filter(([, b]) => !nativeSupports(b()))) {
        const model = build();
        // The same model object through both: each kernel keeps per-model state.
        const a = compareKernels(auto, wasm, model);
        expect(a, name).toBe(0);
      }
      const m = nativeCases[0][1]();
      expect(Math.max(...compare(auto, m, 5, 3))).toBeLessThanOrEqual(TOLERANCE);
    },
  );

  it.runIf(cpuRunsIt)("'native' and CELLSTREAM_KERNEL=native force it", () => {
    expect(selectKernel({ kernel: 'native', ort: 'off', nativeAddon: addonPath }).name).toBe('native-avx2');
    process.env.CELLSTREAM_KERNEL = 'native';
    expect(selectKernel({ ort: 'off', nativeAddon: addonPath }).name).toBe('native-avx2');
  });

  it("'auto' without the addon is the wasm kernel", () => {
    expect(selectKernel({ ort: 'off', nativeAddon: MISSING }).name).toBe('wasm-simd128');
  });

  it("'native' without the addon is a KernelUnavailableError that says how to get it", () => {
    const err = catchError(() => selectKernel({ kernel: 'native', nativeAddon: MISSING }));
    expect(err).toBeInstanceOf(KernelUnavailableError);
    expect((err as KernelUnavailableError).code).toBe('KERNEL_UNAVAILABLE');
    expect((err as Error).message).toMatch(/did not load.*npm run build.*choose kernel 'auto' or 'wasm'/);
    process.env.CELLSTREAM_KERNEL = 'native';
    expect(() => selectKernel({ nativeAddon: MISSING })).toThrow(KernelUnavailableError);
  });

  it('treats an addon that reports the CPU unfit, or a file that is not the addon, as missing', () => {
    const unfit = join(dir, 'unfit.cjs');
    writeFileSync(unfit, 'module.exports = { available: () => false, create() {}, run() {} };\n');
    expect(selectKernel({ ort: 'off', nativeAddon: unfit }).name).toBe('wasm-simd128');
    expect(() => selectKernel({ kernel: 'native', nativeAddon: unfit })).toThrow(/lacks AVX2 and FMA/);
    const other = join(dir, 'other.cjs');
    writeFileSync(other, 'module.exports = {};\n');
    expect(loadNative(other)).toBeInstanceOf(Error);
    expect(() => selectKernel({ kernel: 'native', nativeAddon: other })).toThrow(
      /not cellstream's native kernel/,
    );
  });

  it.runIf(cpuRunsIt)('keeps the models it runs off ONNX Runtime at every batch size, with ort: auto', () => {
    const kernel = selectKernel({ ort: 'auto', ortMinFlops: 0, nativeAddon: addonPath });
    expect(kernel.name).toMatch(/^native-avx2\+onnxruntime-node /);
    const model = nativeCases[0][1]();
    const S = stateSize(model);
    const rnd = prng(80);
    const a = new Float32Array(64 * S);
    const b = new Float32Array(64 * S);
    for (let t = 0; t < 3; t++) {
      const x = randomInputs(model, 64, rnd);
      expect(Array.from(kernel.stepBatch(model, a, x, 64))).toEqual(
        Array.from(native.stepBatch(model, b, x, 64)),
      );
    }
  });

  it('the wasm choice never uses the native kernel', () => {
    expect(selectKernel({ kernel: 'wasm', ort: 'off', nativeAddon: addonPath }).name).toBe('wasm-simd128');
  });
});

/** Steps both kernels from the zero state over 4 steps of 3 keys; the largest output difference. */
function compareKernels(a: Kernel, b: Kernel, model: Model): number {
  const rnd = prng(77);
  const S = stateSize(model);
  const sa = new Float32Array(3 * S);
  const sb = new Float32Array(3 * S);
  let worst = 0;
  for (let t = 0; t < 4; t++) {
    const x = randomInputs(model, 3, rnd);
    const ya = a.stepBatch(model, sa, x, 3);
    const yb = b.stepBatch(model, sb, x, 3);
    for (let i = 0; i < ya.length; i++) worst = Math.max(worst, Math.abs(ya[i] - yb[i]));
  }
  return worst;
}

function catchError(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}
