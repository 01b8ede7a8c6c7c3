import type { Model } from '../types.js';

/**
 * One implementation of the batched step. Every kernel computes what `stepBatch` in network.ts
 * (the reference) computes, within the tolerance its tests state: `states` (`batch × stateSize`)
 * is advanced in place and the outputs (`batch × outputSize`) are returned.
 */
export interface Kernel {
  /** e.g. 'js-reference', 'wasm-simd128'. For logs, metrics and the benchmark table. */
  readonly name: string;
  /** Whether this kernel runs `model` itself; a kernel that does not may still delegate it. */
  supports(model: Model): boolean;
  stepBatch(
    model: Model,
    states: Float32Array,
    inputs: readonly ArrayLike<number>[],
    batch: number,
  ): Float32Array;
}
