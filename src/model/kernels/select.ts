import { KernelUnavailableError } from '../../errors.js';
import type { Model } from '../types.js';
import { createNativeKernel, loadNative } from './native/nativeKernel.js';
import { createOrtKernel, flopsPerKey, loadOrt } from './ort/ortKernel.js';
import { referenceKernel } from './reference.js';
import type { Kernel } from './types.js';
import { createWasmKernel, simd128Module } from './wasm/wasmKernel.js';

export type KernelChoice = 'auto' | 'native' | 'wasm' | 'js';

export interface KernelOptions {
  /**
   * 'auto' (default): the native kernel where its addon loads (built, x86-64 with AVX2 + FMA) for
   * the models it runs, the wasm kernel for the rest or where it does not load, the reference
   * where WebAssembly SIMD is missing too. 'native': the native kernel or a KernelUnavailableError
   * (models it does not run still go to wasm). 'wasm': the wasm kernel or an error, never native.
   * 'js': always the reference. The environment variable CELLSTREAM_KERNEL sets the default, so
   * an operator can force a fallback without a config change.
   */
  readonly kernel?: KernelChoice;
  /** Overrides SIMD detection (tests use false to exercise the fallback on a machine that has it). */
  readonly simd?: boolean;
  /** The addon file to load the native kernel from; tests name a missing one to see the fallback. */
  readonly nativeAddon?: string;
  /**
   * Large batches through ONNX Runtime (onnxruntime-node, an optional peer dependency): 'auto'
   * uses it when it is installed and loads, 'off' (default) never; never for a model the native
   * kernel runs (it is faster). CELLSTREAM_ORT sets the default. Not with kernel 'js', which
   * means the reference only.
   *
   * Off by default because it makes results depend on batching: ORT and the wasm kernel agree
   * within 1e-6, not bit for bit, so a key's step can round differently depending on how many
   * other keys shared its batch, and a redelivered event (recomputed in another batch) would not
   * repeat its prediction exactly, which the delivery rules promise (docs/architecture.md). The wasm
   * kernel gives every key the same bits in any batch.
   */
  readonly ort?: 'auto' | 'off';
  /**
   * A batch goes to ONNX Runtime when its FLOPs (keys × 2 × multiply-adds per key) reach this;
   * default 1e6, ~25 keys at I=16, H=64. Below it ORT's fixed ~15 µs per run loses to wasm.
   */
  readonly ortMinFlops?: number;
  /** The package to load ONNX Runtime from; tests name a missing one to see the fallback. */
  readonly ortModule?: string;
}

function choiceFromEnv(): KernelChoice {
  const v = process.env.CELLSTREAM_KERNEL;
  if (v === undefined || v === '') return 'auto';
  if (v === 'auto' || v === 'native' || v === 'wasm' || v === 'js') return v;
  throw new RangeError(`CELLSTREAM_KERNEL must be auto, native, wasm or js, not '${v}'`);
}

function ortFromEnv(): 'auto' | 'off' {
  const v = process.env.CELLSTREAM_ORT;
  if (v === undefined || v === '') return 'off';
  if (v === 'auto' || v === 'off') return v;
  throw new RangeError(`CELLSTREAM_ORT must be auto or off, not '${v}'`);
}

/**
 * The kernel to step models with. Each kernel hands a model it does not run to the next one down
 * (native → wasm → reference: e.g. a clipped LSTM to wasm, softplus to the reference), so every model
 * runs on whatever is chosen; with `ort: 'auto'`, large batches go to ONNX Runtime where it is
 * installed.
 */
export function selectKernel(options: KernelOptions = {}): Kernel {
  const choice = options.kernel ?? choiceFromEnv();
  if (choice === 'js') return referenceKernel;
  const module = options.simd === false ? null : simd128Module();
  if (!module && choice === 'wasm')
    throw new KernelUnavailableError('the wasm kernel needs WebAssembly SIMD, which this runtime lacks');
  let base = module ? perModel(createWasmKernel(module)) : referenceKernel;
  let native: Kernel | undefined;
  if (choice === 'native' || choice === 'auto') {
    const addon = loadNative(options.nativeAddon);
    if (!(addon instanceof Error)) {
      native = createNativeKernel(addon);
      base = perModel(native, base);
    } else if (choice === 'native')
      throw new KernelUnavailableError(`${addon.message}; choose kernel 'auto' or 'wasm' to run without it`, {
        cause: addon,
      });
  }
  if ((options.ort ?? ortFromEnv()) === 'off') return base;
  const ort = loadOrt(options.ortModule);
  if (ort instanceof Error) return base;
  const ortKernel = createOrtKernel(ort);
  // A model the native kernel runs stays on it at every batch size: it outruns ORT there (npm run
  // bench), and gives a key the same bits in any batch, which ORT does not.
  const large: Kernel = native
    ? { ...ortKernel, supports: (m) => ortKernel.supports(m) && !native.supports(m) }
    : ortKernel;
  return withLargeBatches(base, large, options.ortMinFlops ?? 1e6);
}

/** `kernel` for the models it supports, `fallback` (by default the reference) for the rest. */
function perModel(kernel: Kernel, fallback: Kernel = referenceKernel): Kernel {
  const chosen = new WeakMap<Model, Kernel>();
  const pick = (model: Model): Kernel => {
    let k = chosen.get(model);
    if (!k) {
      k = kernel.supports(model) ? kernel : fallback;
      chosen.set(model, k);
    }
    return k;
  };
  return {
    name: kernel.name,
    supports: () => true,
    stepBatch: (model, states, inputs, batch, out) =>
      pick(model).stepBatch(model, states, inputs, batch, out),
    session: (model, capacity) => pick(model).session(model, capacity),
  };
}

/**
 * `base`, with batches of at least `minFlops` sent to `large`. A model `large` does not support,
 * or fails to build or run, stays on `base` from then on, with a process warning saying why; a
 * failed step leaves the states as they were, so `base` takes the same step again.
 */
export function withLargeBatches(base: Kernel, large: Kernel, minFlops: number): Kernel {
  const minKeys = new WeakMap<Model, number>();
  const threshold = (model: Model): number => {
    let n = minKeys.get(model);
    if (n === undefined) {
      n = large.supports(model)
        ? Math.max(1, Math.ceil(minFlops / flopsPerKey(model)))
        : Number.POSITIVE_INFINITY;
      minKeys.set(model, n);
    }
    return n;
  };
  return {
    name: `${base.name}+${large.name}`,
    supports: () => true,
    stepBatch(model, states, inputs, batch, out) {
      if (batch >= threshold(model)) {
        try {
          return large.stepBatch(model, states, inputs, batch, out);
        } catch (err) {
          if (err instanceof RangeError) throw err; // the caller's sizes, not the kernel
          minKeys.set(model, Number.POSITIVE_INFINITY);
          process.emitWarning(
            `cellstream: ${large.name} failed on model ${model.name} (${(err as Error).message}); stepping it with ${base.name} from now on`,
            'CellstreamKernelWarning',
          );
        }
      }
      return base.stepBatch(model, states, inputs, batch, out);
    },
    // A session's batches are the caller's; resident state lives in the base kernel.
    session: (model, capacity) => base.session(model, capacity),
  };
}
