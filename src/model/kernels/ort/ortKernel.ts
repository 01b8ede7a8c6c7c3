import { createRequire } from 'node:module';
import { checkBatch, outputSize, stateSize } from '../../network.js';
import type { Model } from '../../types.js';
import { checkBatchSizes, checkOut, gatherSession } from '../session.js';
import type { Kernel } from '../types.js';
import { ortGraph, ortGraphSupports } from './graph.js';

/** The parts of onnxruntime-node's native binding this kernel uses. */
interface OrtTensor {
  readonly data: unknown;
}
interface OrtSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(
    feeds: Record<string, OrtTensor>,
    fetches: Record<string, OrtTensor | null>,
    options: object,
  ): Record<string, OrtTensor>;
  dispose(): void;
}
export interface OrtRuntime {
  readonly version: string;
  newSession(): OrtSession;
  tensor(data: Float32Array, dims: readonly number[]): OrtTensor;
}

const loaded = new Map<string, OrtRuntime | Error>();

/**
 * onnxruntime-node, if it is installed and its native library loads here; otherwise the reason it
 * did not, as an Error. Loaded once per process and module name.
 *
 * The kernel calls the package's native session (`dist/binding`), which runs synchronously: its
 * public `InferenceSession.run` wraps the same call in a promise resolved through `setImmediate`,
 * an event-loop turn per step that a kernel (synchronous, like the others) cannot take. The
 * binding's shape is checked here; a version that changed it falls back like a missing package.
 */
export function loadOrt(moduleName = 'onnxruntime-node'): OrtRuntime | Error {
  const cached = loaded.get(moduleName);
  if (cached) return cached;
  let result: OrtRuntime | Error;
  try {
    const require = createRequire(import.meta.url);
    const main = require.resolve(moduleName);
    const local = createRequire(main);
    const { binding, initOrt } = local(`${moduleName}/dist/binding`) as {
      binding: { InferenceSession: new () => OrtSession };
      initOrt: () => void;
    };
    const { Tensor } = local('onnxruntime-common') as {
      Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor;
    };
    const version = (local(`${moduleName}/package.json`) as { version: string }).version;
    if (
      typeof binding?.InferenceSession !== 'function' ||
      typeof initOrt !== 'function' ||
      typeof Tensor !== 'function'
    ) {
      throw new Error(`${moduleName} ${version} does not have the native binding this kernel calls`);
    }
    initOrt();
    result = {
      version,
      newSession: () => new binding.InferenceSession(),
      tensor: (data, dims) => new Tensor('float32', data, dims),
    };
  } catch (err) {
    result = err instanceof Error ? err : new Error(String(err));
  }
  loaded.set(moduleName, result);
  return result;
}

/** Multiply–adds per key-step, ×2: what decides whether a batch is worth ORT's fixed cost per run. */
export function flopsPerKey(model: Model): number {
  let f = 0;
  for (const b of model.branches) {
    for (const l of b.layers)
      f += 2 * (l.kind === 'lstm' ? 4 : 3) * l.hiddenSize * (l.inputSize + l.hiddenSize);
  }
  for (const d of model.head) f += 2 * d.inputSize * d.outputSize;
  return f;
}

interface Compiled {
  readonly session: OrtSession;
  readonly S: number;
  readonly O: number;
  readonly sizes: readonly number[];
  /** Per batch size: the preallocated buffer ORT writes the next states into, and its tensor. */
  readonly next: Map<number, { buffer: Float32Array; tensor: OrtTensor }>;
}

/**
 * A kernel on ONNX Runtime (MLAS's AVX2/AVX-512 GEMMs, one intra-op thread as the design gives the
 * numbers one core): the model becomes one ONNX graph (graph.ts) and a batch one `run`. Its fixed
 * cost per run (~15 µs) makes it a kernel for large batches only; `selectKernel` decides.
 * Throws when a model cannot be built or run on ORT; `selectKernel` then keeps the model on wasm.
 */
export function createOrtKernel(ort: OrtRuntime): Kernel {
  const compiled = new WeakMap<Model, Compiled>();
  const compile = (model: Model): Compiled => {
    const bytes = ortGraph(model);
    const session = ort.newSession();
    session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    const c: Compiled = {
      session,
      S: stateSize(model),
      O: outputSize(model),
      sizes: model.inputs.map((i) => i.size),
      next: new Map(),
    };
    compiled.set(model, c);
    return c;
  };
  const kernel: Kernel = {
    name: `onnxruntime-node ${ort.version}`,
    supports: ortGraphSupports,
    stepBatch(model, states, inputs, batch, into) {
      let c = compiled.get(model);
      if (!c) {
        // The reference's checks validate the model once; later calls check sizes only.
        checkBatch(model, states, inputs, batch);
        c = compile(model);
      }
      const { S, O, sizes } = c;
      checkBatchSizes(model, states, inputs, batch, S, sizes);
      const feeds: Record<string, OrtTensor> = { state: ort.tensor(states, [1, batch, S]) };
      for (let i = 0; i < sizes.length; i++) {
        const x = inputs[i];
        feeds[`x${i}`] = ort.tensor(x instanceof Float32Array ? x : Float32Array.from(x), [
          1,
          batch,
          sizes[i],
        ]);
      }
      let next = c.next.get(batch);
      if (!next) {
        next = { buffer: new Float32Array(batch * S), tensor: undefined as unknown as OrtTensor };
        next.tensor = ort.tensor(next.buffer, [1, batch, S]);
        // Batches of every size would keep a buffer for every size; the engine's are few and bounded.
        if (c.next.size < 64) c.next.set(batch, next);
      }
      // ORT writes the outputs straight into the array returned (no copy out of a buffer of ours).
      if (into) checkOut(into, batch * O);
      const out = into
        ? into.length === batch * O
          ? into
          : into.subarray(0, batch * O)
        : new Float32Array(batch * O);
      c.session.run(feeds, { next: next.tensor, out: ort.tensor(out, [1, batch, O]) }, {});
      states.set(next.buffer);
      return into ?? out;
    },
    session: (model, capacity) => gatherSession(kernel, model, capacity),
  };
  return kernel;
}
