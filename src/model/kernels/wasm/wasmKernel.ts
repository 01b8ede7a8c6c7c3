import { checkBatch, createState } from '../../network.js';
import type { Model } from '../../types.js';
import {
  checkBatchSizes,
  checkCapacity,
  checkOut,
  checkSlot,
  checkStepSlots,
  copyFloats as copy,
  gatherSession,
} from '../session.js';
import type { Kernel, KernelSession } from '../types.js';
import { type WasmModule, wasmApi } from './api.js';
import { instantiate, type ModelInstance } from './instance.js';
import { activationsSupported } from './layout.js';
import { SIMD128_WASM_BASE64 } from './simd128.generated.js';

let compiled: WasmModule | null | undefined;

/**
 * The compiled SIMD128 module, or null where this runtime lacks WebAssembly or its SIMD proposal
 * (validation fails on the first v128 instruction). Compiled once per process.
 */
export function simd128Module(): WasmModule | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  if (wasmApi) {
    const bytes = Buffer.from(SIMD128_WASM_BASE64, 'base64');
    if (wasmApi.validate(bytes)) compiled = new wasmApi.Module(bytes);
  }
  return compiled;
}

/** Activations the kernel evaluates itself; softplus is left to the reference. */
export function wasmSupports(model: Model): boolean {
  return (
    model.branches.every((b) =>
      b.layers.every((l) =>
        activationsSupported(
          l.kind === 'lstm'
            ? [l.activations.f, l.activations.g, l.activations.h]
            : [l.activations.f, l.activations.g],
        ),
      ),
    ) && activationsSupported(model.head.map((d) => d.activation))
  );
}

/**
 * The WebAssembly SIMD128 kernel: weights are packed into each model's own wasm memory once.
 * `stepBatch` copies a batch's states and inputs in, steps them in chunks of up to 256 keys
 * (fewer at large H) and copies them out; a `session` keeps its keys' states resident in its own
 * instance's memory, so a step there copies only the inputs.
 */
export function createWasmKernel(module: WasmModule): Kernel {
  const instances = new WeakMap<Model, ModelInstance>();
  const kernel: Kernel = {
    name: 'wasm-simd128',
    supports: wasmSupports,
    stepBatch(model, states, inputs, batch, into) {
      let m = instances.get(model);
      if (!m) {
        // The reference's checks validate the model once; later calls check sizes only.
        checkBatch(model, states, inputs, batch);
        m = instantiate(module, model);
        instances.set(model, m);
      }
      const { S, O, f32, inputSizes } = m;
      checkBatchSizes(model, states, inputs, batch, S, inputSizes);
      if (into) checkOut(into, batch * O);
      const out = into ?? new Float32Array(batch * O);
      if (batch <= m.chunk && states.length === batch * S) {
        // One run: whole-array copies through views of the wasm buffers, cached for the last batch size.
        const v = viewsFor(m, batch);
        v.states.set(states);
        for (let i = 0; i < inputs.length; i++) copy(inputs[i], 0, f32, m.inputs[i], batch * inputSizes[i]);
        m.run(batch);
        states.set(v.states);
        if (out.length === batch * O) out.set(v.out);
        else copy(v.out, 0, out, 0, batch * O);
        return out;
      }
      for (let start = 0; start < batch; start += m.chunk) {
        const n = Math.min(m.chunk, batch - start);
        copy(states, start * S, f32, m.states, n * S);
        for (let i = 0; i < inputs.length; i++) {
          copy(inputs[i], start * inputSizes[i], f32, m.inputs[i], n * inputSizes[i]);
        }
        m.run(n);
        copy(f32, m.states, states, start * S, n * S);
        copy(f32, m.out, out, start * O, n * O);
      }
      return out;
    },
    session(model, capacity) {
      checkCapacity(capacity);
      if (!wasmSupports(model)) return gatherSession(kernel, model, capacity);
      checkBatch(
        model,
        createState(model),
        model.inputs.map((i) => new Float32Array(i.size)),
        1,
      );
      return wasmSession(instantiate(module, model, capacity), capacity);
    },
  };
  return kernel;
}

const views = new WeakMap<ModelInstance, { n: number; states: Float32Array; out: Float32Array }>();

function viewsFor(m: ModelInstance, n: number): { states: Float32Array; out: Float32Array } {
  let v = views.get(m);
  if (!v || v.n !== n) {
    v = {
      n,
      states: m.f32.subarray(m.states, m.states + n * m.S),
      out: m.f32.subarray(m.out, m.out + n * m.O),
    };
    views.set(m, v);
  }
  return v;
}

/** A session on its own instance, whose memory holds the slab: the instance never grows after it is laid out, so the views stay valid. */
function wasmSession(m: ModelInstance, capacity: number): KernelSession {
  const { S, O, f32, i32, inputSizes, chunk } = m;
  const slabBytes = m.slab * 4;
  const stateBytes = S * 4;
  let view = f32.subarray(m.out, m.out + O);
  return {
    capacity,
    stateSize: S,
    outputSize: O,
    stepSlots(slots, inputs, n) {
      checkStepSlots(slots, inputs, inputSizes, n, capacity);
      // More keys than one run takes: the outputs of every chunk go to a fresh array.
      const all = n > chunk ? new Float32Array(n * O) : undefined;
      for (let start = 0; start < n; start += chunk) {
        const k = Math.min(chunk, n - start);
        for (let b = 0; b < k; b++) i32[m.sptrs + b] = slabBytes + slots[start + b] * stateBytes;
        for (let i = 0; i < inputs.length; i++) {
          copy(inputs[i], start * inputSizes[i], f32, m.inputs[i], k * inputSizes[i]);
        }
        m.run(k);
        if (all) copy(f32, m.out, all, start * O, k * O);
      }
      if (all) return all;
      if (view.length !== n * O) view = f32.subarray(m.out, m.out + n * O);
      return view;
    },
    readState(slot, into, offset = 0) {
      checkSlot(slot, capacity);
      copy(f32, m.slab + slot * S, into, offset, S);
    },
    writeState(slot, state) {
      checkSlot(slot, capacity);
      if (state.length === 0) f32.fill(0, m.slab + slot * S, m.slab + (slot + 1) * S);
      else if (state.length !== S) throw new RangeError(`state has ${state.length} values, expected ${S}`);
      else copy(state, 0, f32, m.slab + slot * S, S);
    },
  };
}
