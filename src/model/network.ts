import { denseForward } from './dense.js';
import { type GruPlan, gruStep, planGru } from './gru.js';
import { type LayerSlot, type StateLayout, stateLayout } from './layout.js';
import { type LstmPlan, lstmStep, planLstm } from './lstm.js';
import type { Model } from './types.js';
import { validateModel } from './validate.js';

interface CompiledBranch {
  readonly input: number;
  readonly plans: readonly (LstmPlan | GruPlan)[];
  readonly slots: readonly LayerSlot[];
}

/** A validated model with its layout, activations and scratch buffers resolved once. */
interface Compiled {
  readonly model: Model;
  readonly layout: StateLayout;
  readonly inputSizes: readonly number[];
  readonly branches: readonly CompiledBranch[];
  readonly outputSize: number;
  /** Ping-pong buffers for the head: [0] holds the concatenated branch outputs. */
  readonly buf: readonly [Float64Array, Float64Array];
}

const compiled = new WeakMap<Model, Compiled>();

/** Validates and prepares `model` once; later calls return the cached result. Models are immutable. */
function compile(model: Model): Compiled {
  const hit = compiled.get(model);
  if (hit) return hit;
  validateModel(model);
  const layout = stateLayout(model);
  const inputIndex = new Map(model.inputs.map((inp, i) => [inp.name, i]));
  let slot = 0;
  const branches = model.branches.map((branch) => {
    const slots = layout.slots.slice(slot, slot + branch.layers.length);
    slot += branch.layers.length;
    return {
      input: inputIndex.get(branch.input)!,
      plans: branch.layers.map((l) => (l.kind === 'lstm' ? planLstm(l) : planGru(l))),
      slots,
    };
  });
  const concatSize = branches.reduce((n, b) => n + b.slots[b.slots.length - 1].hiddenSize, 0);
  const widest = Math.max(concatSize, ...model.head.map((d) => d.outputSize));
  const c: Compiled = {
    model,
    layout,
    inputSizes: model.inputs.map((i) => i.size),
    branches,
    outputSize: model.head.length > 0 ? model.head[model.head.length - 1].outputSize : concatSize,
    buf: [new Float64Array(widest), new Float64Array(widest)],
  };
  compiled.set(model, c);
  return c;
}

/** Float32 values in one key's state vector. */
export function stateSize(model: Model): number {
  return compile(model).layout.size;
}

/** Length of the network's output vector. */
export function outputSize(model: Model): number {
  return compile(model).outputSize;
}

/** A fresh (all-zero) state for one key: the state before its first event. */
export function createState(model: Model): Float32Array {
  return new Float32Array(compile(model).layout.size);
}

/**
 * Advances key `b` of a batch by one step, in place, and writes its output at `out[b·O…]`.
 * `inputs[i]` holds model input i for every key of the batch, `size_i` values per key.
 */
function stepOne(
  c: Compiled,
  states: Float32Array,
  inputs: readonly ArrayLike<number>[],
  b: number,
  out: Float32Array,
) {
  const sOff = b * c.layout.size;
  const [concat] = c.buf;
  let at = 0;
  for (const branch of c.branches) {
    let x: ArrayLike<number> = inputs[branch.input];
    let xOff = b * c.inputSizes[branch.input];
    for (let l = 0; l < branch.plans.length; l++) {
      const plan = branch.plans[l];
      const slot = branch.slots[l];
      if (plan.layer.kind === 'lstm') {
        lstmStep(plan as LstmPlan, x, xOff, states, sOff + slot.h, sOff + slot.c);
      } else {
        gruStep(plan as GruPlan, x, xOff, states, sOff + slot.h);
      }
      // The next layer reads this layer's fresh h_t straight from the state vector.
      x = states;
      xOff = sOff + slot.h;
    }
    const last = branch.slots[branch.slots.length - 1];
    for (let u = 0; u < last.hiddenSize; u++) concat[at + u] = states[sOff + last.h + u];
    at += last.hiddenSize;
  }
  let src = 0;
  for (const dense of c.model.head) {
    denseForward(dense, c.buf[src], 0, c.buf[1 - src], 0);
    src = 1 - src;
  }
  const O = c.outputSize;
  const y = c.buf[src];
  for (let j = 0; j < O; j++) out[b * O + j] = y[j];
}

function checkInputs(c: Compiled, inputs: readonly ArrayLike<number>[], batch: number): void {
  if (inputs.length !== c.inputSizes.length) {
    throw new RangeError(`model takes ${c.inputSizes.length} inputs, got ${inputs.length}`);
  }
  inputs.forEach((x, i) => {
    if (x.length !== batch * c.inputSizes[i]) {
      throw new RangeError(`input ${i} has ${x.length} values, expected ${batch}×${c.inputSizes[i]}`);
    }
  });
}

function checkCompiledBatch(
  c: Compiled,
  states: Float32Array,
  inputs: readonly ArrayLike<number>[],
  batch: number,
): void {
  if (states.length !== batch * c.layout.size) {
    throw new RangeError(`states have ${states.length} values, expected ${batch}×${c.layout.size}`);
  }
  checkInputs(c, inputs, batch);
}

/** Validates `model` (once) and the sizes of a batch's states and inputs, as `stepBatch` does. */
export function checkBatch(
  model: Model,
  states: Float32Array,
  inputs: readonly ArrayLike<number>[],
  batch: number,
): void {
  checkCompiledBatch(compile(model), states, inputs, batch);
}

/**
 * One recurrent step for one key, without touching the arguments: returns the next state and the
 * network's output. `inputs` holds one vector per model input, in `model.inputs` order.
 */
export function step(
  model: Model,
  state: Float32Array,
  inputs: readonly ArrayLike<number>[],
): { state: Float32Array; output: Float32Array } {
  const c = compile(model);
  if (state.length !== c.layout.size) {
    throw new RangeError(`state has ${state.length} values, expected ${c.layout.size}`);
  }
  checkInputs(c, inputs, 1);
  const next = state.slice();
  const output = new Float32Array(c.outputSize);
  stepOne(c, next, inputs, 0, output);
  return { state: next, output };
}

/**
 * One step for each of `batch` keys at once. `states` holds the keys' states back to back
 * (`batch × stateSize`) and is updated in place; `inputs[i]` holds input i of every key back to
 * back. Returns the outputs, `batch × outputSize`. Key b's result equals `step` on key b alone.
 */
export function stepBatch(
  model: Model,
  states: Float32Array,
  inputs: readonly ArrayLike<number>[],
  batch: number,
): Float32Array {
  const c = compile(model);
  checkCompiledBatch(c, states, inputs, batch);
  const out = new Float32Array(batch * c.outputSize);
  for (let b = 0; b < batch; b++) stepOne(c, states, inputs, b, out);
  return out;
}

/**
 * Runs one whole sequence from the zero state, one step at a time, returning every step's output.
 * `steps[t]` holds the inputs of step t (one vector per model input). Used by tests and tools.
 */
export function runSequence(model: Model, steps: readonly (readonly ArrayLike<number>[])[]): Float32Array[] {
  let state = createState(model);
  const outputs: Float32Array[] = [];
  for (const inputs of steps) {
    const r = step(model, state, inputs);
    state = r.state;
    outputs.push(r.output);
  }
  return outputs;
}
