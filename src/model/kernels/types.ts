import type { Model } from '../types.js';

/**
 * One implementation of the batched step. Every kernel computes what `stepBatch` in network.ts
 * (the reference) computes, within the tolerance its tests state: `states` (`batch × stateSize`)
 * is advanced in place and the outputs (`batch × outputSize`) are returned — written into `out`
 * when it is given (at least `batch × outputSize` long; `out` is returned), into a new array
 * otherwise. A caller that steps often passes `out`: a new typed array of more than 64 bytes is
 * allocated outside V8's heap, which costs about as much as a step at H=64.
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
    out?: Float32Array,
  ): Float32Array;
  /**
   * Keys' states kept inside the kernel between steps, addressed by slot, so a step copies
   * neither states nor outputs: what a caller that owns its keys' state (one process, resident
   * keys) should use. Same numbers as `stepBatch`.
   */
  session(model: Model, capacity: number): KernelSession;
}

/** `capacity` keys' states, resident where the kernel computes; every slot starts at zero. */
export interface KernelSession {
  readonly capacity: number;
  readonly stateSize: number;
  readonly outputSize: number;
  /**
   * One step for each of the `n` keys in `slots[0..n)` (distinct slots), `inputs[i]` holding
   * input i of each key back to back. Returns the outputs (`n × outputSize`) in a buffer the
   * session reuses: read or copy them before the next call.
   */
  stepSlots(slots: ArrayLike<number>, inputs: readonly ArrayLike<number>[], n: number): Float32Array;
  /** Copies slot's state into `into` at `offset`. */
  readState(slot: number, into: Float32Array, offset?: number): void;
  /** Sets slot's state (a zero-length `state` resets it to zeros). */
  writeState(slot: number, state: ArrayLike<number>): void;
}
