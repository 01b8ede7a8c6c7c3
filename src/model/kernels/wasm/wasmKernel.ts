import { checkBatch } from '../../network.js';
import type { Model } from '../../types.js';
import type { Kernel } from '../types.js';
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
 * The WebAssembly SIMD128 kernel: weights are packed into each model's own wasm memory once;
 * a batch's states and inputs are copied in, stepped in chunks of up to 256 keys (fewer at large H), and copied out
 * (a memcpy of ~0.5 KiB per key at H=64, small next to the ~41k FLOPs of its step).
 */
export function createWasmKernel(module: WasmModule): Kernel {
  const instances = new WeakMap<Model, ModelInstance>();
  return {
    name: 'wasm-simd128',
    supports: wasmSupports,
    stepBatch(model, states, inputs, batch) {
      let m = instances.get(model);
      if (!m) {
        // The reference's checks validate the model once; later calls check sizes only.
        checkBatch(model, states, inputs, batch);
        m = instantiate(module, model);
        instances.set(model, m);
      }
      const { S, O, f32, inputSizes } = m;
      if (states.length !== batch * S || inputs.length !== inputSizes.length)
        checkBatch(model, states, inputs, batch);
      for (let i = 0; i < inputs.length; i++) {
        if (inputs[i].length !== batch * inputSizes[i]) checkBatch(model, states, inputs, batch);
      }
      const out = new Float32Array(batch * O);
      for (let start = 0; start < batch; start += m.chunk) {
        const n = Math.min(m.chunk, batch - start);
        copyIn(f32, m.states, states, start * S, n * S);
        for (let i = 0; i < inputs.length; i++) {
          copyIn(f32, m.inputs[i], inputs[i], start * inputSizes[i], n * inputSizes[i]);
        }
        m.run(n);
        copyOut(f32, m.states, states, start * S, n * S);
        copyOut(f32, m.out, out, start * O, n * O);
      }
      return out;
    },
  };
}

function copyIn(f32: Float32Array, to: number, src: ArrayLike<number>, from: number, count: number): void {
  if (src instanceof Float32Array) {
    f32.set(src.subarray(from, from + count), to);
    return;
  }
  for (let j = 0; j < count; j++) f32[to + j] = src[from + j];
}

function copyOut(f32: Float32Array, from: number, dst: Float32Array, to: number, count: number): void {
  dst.set(f32.subarray(from, from + count), to);
}
