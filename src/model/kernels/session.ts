import { checkBatch, outputSize, stateSize } from '../network.js';
import type { Model } from '../types.js';
import type { Kernel, KernelSession } from './types.js';

export function checkCapacity(capacity: number): void {
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new RangeError(`a session's capacity must be a positive integer, got ${capacity}`);
  }
}

export function checkSlot(slot: number, capacity: number): void {
  if (!(slot >= 0 && slot < capacity && Number.isInteger(slot))) {
    throw new RangeError(`slot ${slot} is outside the session's 0..${capacity - 1}`);
  }
}

export function checkOut(out: Float32Array, needed: number): void {
  if (out.length < needed) {
    throw new RangeError(`the output buffer has ${out.length} values, the batch needs ${needed}`);
  }
}

/**
 * A `stepBatch` call's sizes against a model the kernel has already validated (with the
 * reference's `checkBatch`, on its first call): only a mismatch pays for `checkBatch` again,
 * which throws the reference's error.
 */
export function checkBatchSizes(
  model: Model,
  states: Float32Array,
  inputs: readonly ArrayLike<number>[],
  batch: number,
  S: number,
  inputSizes: readonly number[],
): void {
  let fits = states.length === batch * S && inputs.length === inputSizes.length;
  for (let i = 0; fits && i < inputs.length; i++) fits = inputs[i].length === batch * inputSizes[i];
  if (!fits) checkBatch(model, states, inputs, batch);
}

/** Checks a `stepSlots` call's inputs (one array per model input, `n` keys' worth each) and slots. */
export function checkStepSlots(
  slots: ArrayLike<number>,
  inputs: readonly ArrayLike<number>[],
  inputSizes: readonly number[],
  n: number,
  capacity: number,
): void {
  if (inputs.length !== inputSizes.length) {
    throw new RangeError(`expected ${inputSizes.length} inputs, got ${inputs.length}`);
  }
  for (let i = 0; i < inputs.length; i++) {
    if (inputs[i].length < n * inputSizes[i]) {
      throw new RangeError(`input ${i} has ${inputs[i].length} values, expected ${n}×${inputSizes[i]}`);
    }
  }
  for (let b = 0; b < n; b++) checkSlot(slots[b], capacity);
}

/** `readState` and `writeState` over a JS slab of `capacity` states of `S` floats. */
export function slabStates(
  slab: Float32Array,
  S: number,
  capacity: number,
): Pick<KernelSession, 'readState' | 'writeState'> {
  return {
    readState(slot, into, offset = 0) {
      checkSlot(slot, capacity);
      into.set(slab.subarray(slot * S, (slot + 1) * S), offset);
    },
    writeState(slot, state) {
      checkSlot(slot, capacity);
      if (state.length === 0) slab.fill(0, slot * S, (slot + 1) * S);
      else if (state.length !== S) throw new RangeError(`state has ${state.length} values, expected ${S}`);
      else slab.set(state, slot * S);
    },
  };
}

// Below this many values an indexed loop beats `subarray` + `set`, whose view costs an allocation.
const SMALL_COPY = 128;

/** Copies `count` values of `src` from `from` into `dst` at `to`, the cheapest way for their size. */
export function copyFloats(
  src: ArrayLike<number>,
  from: number,
  dst: Float32Array,
  to: number,
  count: number,
): void {
  if (src instanceof Float32Array && from === 0 && count === src.length) {
    dst.set(src, to);
    return;
  }
  if (count > SMALL_COPY && src instanceof Float32Array) {
    dst.set(src.subarray(from, from + count), to);
    return;
  }
  for (let j = 0; j < count; j++) dst[to + j] = src[from + j];
}

/**
 * A session over any kernel's `stepBatch`: the slab is a JS array, and each step gathers the
 * slots' states into a batch and scatters them back. For kernels with no resident memory of
 * their own (the reference).
 */
export function gatherSession(
  kernel: Pick<Kernel, 'stepBatch'>,
  model: Model,
  capacity: number,
): KernelSession {
  checkCapacity(capacity);
  const S = stateSize(model);
  const slab = new Float32Array(capacity * S);
  let batch = new Float32Array(S);
  return {
    capacity,
    stateSize: S,
    outputSize: outputSize(model),
    stepSlots(slots, inputs, n) {
      if (batch.length < n * S) batch = new Float32Array(n * S);
      const states = batch.subarray(0, n * S);
      for (let b = 0; b < n; b++) {
        checkSlot(slots[b], capacity);
        states.set(slab.subarray(slots[b] * S, (slots[b] + 1) * S), b * S);
      }
      const out = kernel.stepBatch(model, states, inputs, n);
      for (let b = 0; b < n; b++) slab.set(states.subarray(b * S, (b + 1) * S), slots[b] * S);
      return out;
    },
    ...slabStates(slab, S, capacity),
  };
}
