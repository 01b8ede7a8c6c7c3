import { checkBatch } from '../../network.js';
import type { Model } from '../../types.js';
import type { Kernel } from '../types.js';
import { CHUNK, instantiate, type ModelInstance } from './instance.js';
import { type WasmModule, wasmApi } from './api.js';
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
          l.kind === 'lstm' ? [l.activations.f, l.activations.g, l.activations.h] : [l.activations.f, l.activations.g],
        ),
      ),
    ) && activationsSupported(model.head.map((d) => d.activation))
  );
}

/**
 * The WebAssembly SIMD128 kernel: weights are packed into each model's own wasm memory once;
 * a batch's states and inputs are copied in, stepped in chunks of up to 256 keys, and copied out
 * (a memcpy of ~0.5 KiB per key at H=64, small next to the ~41k FLOPs of its step).
 */
export function createWasmKernel(module: WasmModule): Kernel {
  const instances = new WeakMap<Model, ModelInstance>();
  const prepare = (model: Model): ModelInstance => {
    let inst = instances.get(model);
    if (!inst) {
      inst = instantiate(module, model);
      instances.set(model, inst);
    }
    return inst;
  };
  return {
    name: 'wasm-simd128',
    supports: wasmSupports,
    stepBatch(model, states, inputs, batch) {
      checkBatch(model, states, inputs, batch);
      const m = prepare(model);
      const { S, O, f32 } = m;
      const out = new Float32Array(batch * O);
      for (let start = 0; start < batch; start += CHUNK) {
        const n = Math.min(CHUNK, batch - start);
        f32.set(states.subarray(start * S, (start + n) * S), m.states);
        inputs.forEach((x, i) => {
          const size = m.inputSizes[i];
          const to = m.inputs[i];
          if (x instanceof Float32Array) f32.set(x.subarray(start * size, (start + n) * size), to);
          else for (let j = 0; j < n * size; j++) f32[to + j] = x[start * size + j];
        });
        m.run(n);
        states.set(f32.subarray(m.states, m.states + n * S), start * S);
        out.set(f32.subarray(m.out, m.out + n * O), start * O);
      }
      return out;
    },
  };
}
