import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkBatch, createState } from '../../network.js';
import type { Model } from '../../types.js';
import {
  checkBatchSizes,
  checkCapacity,
  checkOut,
  checkStepSlots,
  copyFloats as copy,
  slabStates,
} from '../session.js';
import type { Kernel, KernelSession } from '../types.js';
import { describe, nativeSupports } from './pack.js';

/** An opaque plan handle: the model's packed weights and scratch inside the addon. */
interface PlanHandle {
  readonly __nativePlan?: never;
}

/** What build/native/cellstream-native.node exports (native/kernel.c). */
export interface NativeAddon {
  /** Whether this CPU runs the kernel (x86-64 with AVX2 and FMA). */
  available(): boolean;
  create(
    desc: Int32Array,
    weights: readonly Float32Array[],
    slab: Float32Array,
    slots: Int32Array,
    out: Float32Array,
    inputs: readonly Float32Array[],
    /** 'avx2': never the AVX-512 tiles (each ISA gives the same bits; the tests compare them). */
    isa?: 'avx2',
  ): PlanHandle;
  /** Steps keys slots[0..n) of the slab, or, given `states`, n keys' states back to back there. */
  run(plan: PlanHandle, n: number, states?: Float32Array): void;
  /** The widest code path `run` takes here: 'avx512' (AVX-512F tiles), 'avx2', or 'none'. */
  isa?(): string;
  /** One core's measured FMA throughput in GFLOP/s at that width, over about `ms` milliseconds. */
  fmaPeak?(ms?: number): number;
}

/**
 * Where `npm run build` (scripts/build-native.mjs) puts the addon: build/native/ at the package
 * root, which is four levels up from this file in src/ and in dist/ alike.
 */
export const DEFAULT_ADDON = fileURLToPath(
  new URL('../../../../build/native/cellstream-native.node', import.meta.url),
);

const loaded = new Map<string, NativeAddon | Error>();

/**
 * The native kernel's addon at `path` (relative to the working directory) if it loads and this
 * CPU runs it; otherwise the reason, as an Error. Loaded once per process and path.
 */
export function loadNative(path = DEFAULT_ADDON): NativeAddon | Error {
  const cached = loaded.get(path);
  if (cached) return cached;
  let result: NativeAddon | Error;
  try {
    const addon = createRequire(import.meta.url)(resolve(path)) as NativeAddon;
    if (
      typeof addon?.available !== 'function' ||
      typeof addon.create !== 'function' ||
      typeof addon.run !== 'function'
    )
      throw new Error(`${path} is not cellstream's native kernel`);
    result = addon.available()
      ? addon
      : new Error('this CPU lacks AVX2 and FMA, which the native kernel needs (x86-64 only)');
  } catch (err) {
    // Node's own message goes on with a require stack over several lines; its first says what failed.
    const message = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    result = new Error(
      `the native kernel's addon did not load (${message}); it is compiled on install (and by npm run build in a checkout) where a C compiler exists: install gcc, then run npm rebuild cellstream`,
    );
  }
  loaded.set(path, result);
  return result;
}

/** One plan inside the addon with the JS buffers it reads and writes, which this object keeps alive. */
interface Instance {
  readonly plan: PlanHandle;
  readonly chunk: number;
  readonly S: number;
  readonly O: number;
  readonly inputSizes: readonly number[];
  readonly slab: Float32Array;
  readonly slots: Int32Array;
  readonly out: Float32Array;
  readonly inputs: readonly Float32Array[];
}

/**
 * Keys per run of the addon. Its scratch is allocated in C (not a wasm heap), so the chunk need not
 * shrink as the layers grow; 256 keys give the blocked product enough key tiles per weight panel.
 */
const NATIVE_CHUNK = 256;

function instantiate(addon: NativeAddon, model: Model, capacity: number, isa?: 'avx2'): Instance {
  const chunk = NATIVE_CHUNK;
  const { desc, weights, S, O } = describe(model, chunk, capacity);
  const inputSizes = model.inputs.map((i) => i.size);
  const slab = new Float32Array(capacity * S);
  const slots = new Int32Array(chunk);
  const out = new Float32Array(chunk * O);
  const inputs = inputSizes.map((n) => new Float32Array(chunk * n));
  const plan = isa
    ? addon.create(desc, weights, slab, slots, out, inputs, isa)
    : addon.create(desc, weights, slab, slots, out, inputs);
  return { plan, chunk, S, O, inputSizes, slab, slots, out, inputs };
}

/**
 * The native (C, AVX2 + FMA) kernel, for the models `nativeSupports` accepts. `stepBatch` steps
 * the caller's states where they lie (no copy) in chunks of up to 256 keys; a `session` keeps its
 * keys' states in a slab the addon reads and writes in place. Like the wasm kernel, a key's
 * result bits do not depend on the batch it is stepped in.
 */
export function createNativeKernel(addon: NativeAddon, options: { isa?: 'avx2' } = {}): Kernel {
  const instances = new WeakMap<Model, Instance>();
  const kernel: Kernel = {
    name: 'native-avx2',
    supports: nativeSupports,
    stepBatch(model, states, inputs, batch, into) {
      let m = instances.get(model);
      if (!m) {
        checkBatch(model, states, inputs, batch);
        if (!nativeSupports(model)) throw new Error(`the native kernel does not run model ${model.name}`);
        m = instantiate(addon, model, 1, options.isa);
        instances.set(model, m);
      }
      const { S, O, inputSizes, chunk } = m;
      checkBatchSizes(model, states, inputs, batch, S, inputSizes);
      if (into) checkOut(into, batch * O);
      const out = into ?? new Float32Array(batch * O);
      for (let start = 0; start < batch; start += chunk) {
        const n = Math.min(chunk, batch - start);
        for (let i = 0; i < inputs.length; i++)
          copy(inputs[i], start * inputSizes[i], m.inputs[i], 0, n * inputSizes[i]);
        addon.run(
          m.plan,
          n,
          start === 0 && n === batch ? states : states.subarray(start * S, (start + n) * S),
        );
        copy(m.out, 0, out, start * O, n * O);
      }
      return out;
    },
    session(model, capacity) {
      checkCapacity(capacity);
      checkBatch(
        model,
        createState(model),
        model.inputs.map((i) => new Float32Array(i.size)),
        1,
      );
      if (!nativeSupports(model)) throw new Error(`the native kernel does not run model ${model.name}`);
      return nativeSession(addon, instantiate(addon, model, capacity, options.isa), capacity);
    },
  };
  return kernel;
}

function nativeSession(addon: NativeAddon, m: Instance, capacity: number): KernelSession {
  const { S, O, inputSizes, chunk, slab, slots } = m;
  let view = m.out.subarray(0, O);
  return {
    capacity,
    stateSize: S,
    outputSize: O,
    stepSlots(keys, inputs, n) {
      checkStepSlots(keys, inputs, inputSizes, n, capacity);
      // More keys than one run takes: the outputs of every chunk go to a fresh array.
      const all = n > chunk ? new Float32Array(n * O) : undefined;
      for (let start = 0; start < n; start += chunk) {
        const k = Math.min(chunk, n - start);
        for (let b = 0; b < k; b++) slots[b] = keys[start + b];
        for (let i = 0; i < inputs.length; i++)
          copy(inputs[i], start * inputSizes[i], m.inputs[i], 0, k * inputSizes[i]);
        addon.run(m.plan, k);
        if (all) copy(m.out, 0, all, start * O, k * O);
      }
      if (all) return all;
      if (view.length !== n * O) view = m.out.subarray(0, n * O);
      return view;
    },
    ...slabStates(slab, S, capacity),
  };
}
