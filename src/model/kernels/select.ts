import type { Model } from '../types.js';
import { referenceKernel } from './reference.js';
import type { Kernel } from './types.js';
import { createWasmKernel, simd128Module } from './wasm/wasmKernel.js';

export type KernelChoice = 'auto' | 'wasm' | 'js';

export interface KernelOptions {
  /**
   * 'auto' (default): the wasm kernel where WebAssembly SIMD exists, the reference otherwise.
   * 'js': always the reference. 'wasm': the wasm kernel or an error. The environment variable
   * CELLSTREAM_KERNEL sets the default, so an operator can force the fallback without a config change.
   */
  readonly kernel?: KernelChoice;
  /** Overrides SIMD detection (tests use false to exercise the fallback on a machine that has it). */
  readonly simd?: boolean;
}

function choiceFromEnv(): KernelChoice {
  const v = process.env.CELLSTREAM_KERNEL;
  if (v === undefined || v === '') return 'auto';
  if (v === 'auto' || v === 'wasm' || v === 'js') return v;
  throw new RangeError(`CELLSTREAM_KERNEL must be auto, wasm or js, not '${v}'`);
}

/**
 * The kernel to step models with. A wasm kernel still hands a model with an activation it does
 * not evaluate (softplus) to the reference, so every model runs on whatever is chosen.
 */
export function selectKernel(options: KernelOptions = {}): Kernel {
  const choice = options.kernel ?? choiceFromEnv();
  if (choice === 'js') return referenceKernel;
  const module = options.simd === false ? null : simd128Module();
  if (!module) {
    if (choice === 'wasm')
      throw new Error('the wasm kernel needs WebAssembly SIMD, which this runtime lacks');
    return referenceKernel;
  }
  const wasm = createWasmKernel(module);
  const chosen = new WeakMap<Model, Kernel>();
  return {
    name: wasm.name,
    supports: () => true,
    stepBatch(model, states, inputs, batch) {
      let k = chosen.get(model);
      if (!k) {
        k = wasm.supports(model) ? wasm : referenceKernel;
        chosen.set(model, k);
      }
      return k.stepBatch(model, states, inputs, batch);
    },
  };
}
