import { stateLayout } from '../../layout.js';
import type { Model } from '../../types.js';
import { type WasmMemory, type WasmModule, wasmApi } from './api.js';
import {
  activationCode,
  D,
  E,
  groups,
  HEAD_BYTES,
  isPlainLstm,
  LAYER_BYTES,
  P,
  PLAN_BYTES,
  packDenseWeights,
  packGruWeights,
  packLstmWeights,
} from './layout.js';

/**
 * Keys stepped per call into wasm; larger batches go in chunks, so memory per model is bounded.
 * The kernel walks every key's [x, h] row once per group of 4 units, so a chunk's rows should stay
 * near L2 (~64 KiB of rows): all 256 keys at H=64, ~60 at H=256, where 256 keys ran 35% slower.
 */
export function chunkSize(maxK: number): number {
  return Math.max(16, Math.min(256, Math.floor(65536 / (4 * maxK))));
}

interface Exports {
  readonly memory: WasmMemory;
  heapBase(): number;
  run(plan: number, n: number): void;
}

/** One model's weights and batch buffers in its own wasm instance, laid out once. */
export interface ModelInstance {
  /** Keys per `run`. */
  readonly chunk: number;
  readonly S: number;
  readonly O: number;
  readonly inputSizes: readonly number[];
  readonly f32: Float32Array;
  /** Float offsets of the chunk's states, per-input buffers and outputs. */
  readonly states: number;
  readonly inputs: readonly number[];
  readonly out: number;
  run(n: number): void;
}

/** Bump allocator: everything 16-byte aligned, with a vector of slack after each region for 4-lane loads. */
class Arena {
  constructor(public top: number) {}
  alloc(floats: number): number {
    const at = (this.top + 15) & ~15;
    this.top = at + floats * 4 + 16;
    return at;
  }
}

type Write = (i32: Int32Array, f32: Float32Array) => void;

export function instantiate(module: WasmModule, model: Model): ModelInstance {
  const ex = new wasmApi!.Instance(module, {}).exports as unknown as Exports;
  const arena = new Arena(ex.heapBase());
  const writes: Write[] = [];
  const put = (data: Float32Array): number => {
    const at = arena.alloc(data.length);
    writes.push((_, f32) => f32.set(data, at >> 2));
    return at;
  };
  const layout = stateLayout(model);
  const S = layout.size;
  const inputSizes = model.inputs.map((i) => i.size);
  const layers = model.branches.flatMap((br) => br.layers);
  const maxK = Math.max(...layers.map((l) => l.inputSize + l.hiddenSize));
  const CHUNK = chunkSize(maxK);

  const plan = arena.alloc(PLAN_BYTES / 4);
  const layerDescs = arena.alloc((layers.length * LAYER_BYTES) / 4);
  const headDescs = arena.alloc((Math.max(1, model.head.length) * HEAD_BYTES) / 4);
  const copies = arena.alloc(model.branches.length * 3);
  const states = arena.alloc(CHUNK * S);
  const inputs = inputSizes.map((n) => arena.alloc(CHUNK * n));
  const xh = arena.alloc(CHUNK * maxK);

  let slot = 0;
  let concatWidth = 0;
  const copyRecords: number[] = [];
  model.branches.forEach((branch) => {
    const inputIndex = model.inputs.findIndex((i) => i.name === branch.input);
    let x = inputs[inputIndex];
    let xStride = inputSizes[inputIndex] * 4;
    let last = layout.slots[slot];
    for (const layer of branch.layers) {
      const s = layout.slots[slot];
      const d = layerDescs + slot * LAYER_BYTES;
      const G = groups(layer.hiddenSize);
      const fields: [number, number][] = [
        [D.kind, layer.kind === 'lstm' ? 0 : 1],
        [D.I, layer.inputSize],
        [D.H, layer.hiddenSize],
        [D.G, G],
        [D.x, x],
        [D.xStride, xStride],
        [D.hOff, s.h * 4],
        [D.cOff, s.c * 4],
      ];
      const acts =
        layer.kind === 'lstm'
          ? [layer.activations.f, layer.activations.g, layer.activations.h]
          : [layer.activations.f, layer.activations.g];
      if (layer.kind === 'lstm') {
        const packed = packLstmWeights(layer);
        fields.push(
          [D.w, put(packed.w)],
          [D.b, put(packed.b)],
          [D.p, put(packed.p)],
          [D.flags, (layer.inputForget ? 1 : 0) | (isPlainLstm(layer) ? 2 : 0)],
        );
      } else {
        const packed = packGruWeights(layer);
        fields.push([D.w, put(packed.w)], [D.b, put(packed.b)], [D.flags, layer.linearBeforeReset ? 1 : 0]);
        if (!layer.linearBeforeReset) fields.push([D.scratch, arena.alloc(CHUNK * G * 12)]);
      }
      const clip = layer.clip ?? Number.POSITIVE_INFINITY;
      writes.push((i32, f32) => {
        for (const [k, v] of fields) i32[(d >> 2) + k] = v;
        f32[(d >> 2) + D.clip] = clip;
        acts.forEach((a, j) => {
          const [code, alpha, beta] = activationCode(a)!;
          i32[(d >> 2) + D.act + 3 * j] = code;
          f32[(d >> 2) + D.act + 3 * j + 1] = alpha;
          f32[(d >> 2) + D.act + 3 * j + 2] = beta;
        });
      });
      // The next layer reads this layer's fresh h straight from the state, as the reference does.
      x = states + s.h * 4;
      xStride = S * 4;
      last = s;
      slot++;
    }
    copyRecords.push(last.h * 4, last.hiddenSize * 4, concatWidth * 4);
    concatWidth += last.hiddenSize;
  });
  const concatStride = groups(concatWidth) * 4;
  const concat = arena.alloc(CHUNK * concatStride);

  let src = concat;
  let srcStride = concatStride * 4;
  model.head.forEach((dense, i) => {
    const e = headDescs + i * HEAD_BYTES;
    const packed = packDenseWeights(dense);
    const oStride = groups(dense.outputSize) * 4;
    const dst = arena.alloc(CHUNK * oStride);
    const [code, alpha, beta] = activationCode(dense.activation)!;
    const fields: [number, number][] = [
      [E.K, dense.inputSize],
      [E.O, dense.outputSize],
      [E.G, groups(dense.outputSize)],
      [E.w, put(packed.w)],
      [E.b, put(packed.b)],
      [E.act, code],
      [E.in, src],
      [E.inStride, srcStride],
      [E.out, dst],
      [E.outStride, oStride * 4],
    ];
    writes.push((i32, f32) => {
      for (const [k, v] of fields) i32[(e >> 2) + k] = v;
      f32[(e >> 2) + E.act + 1] = alpha;
      f32[(e >> 2) + E.act + 2] = beta;
    });
    src = dst;
    srcStride = oStride * 4;
  });
  const O = model.head.length > 0 ? model.head[model.head.length - 1].outputSize : concatWidth;
  const out = arena.alloc(CHUNK * O);

  const header: [number, number][] = [
    [P.nLayers, layers.length],
    [P.layers, layerDescs],
    [P.nHead, model.head.length],
    [P.head, headDescs],
    [P.states, states],
    [P.stride, S * 4],
    [P.xh, xh],
    [P.nCopy, model.branches.length],
    [P.copies, copies],
    [P.concat, concat],
    [P.concatStride, concatStride * 4],
    [P.result, src],
    [P.resultStride, srcStride],
    [P.out, out],
    [P.O, O],
  ];
  writes.push((i32) => {
    for (const [k, v] of header) i32[(plan >> 2) + k] = v;
    i32.set(copyRecords, copies >> 2);
  });

  const have = ex.memory.buffer.byteLength;
  if (arena.top > have) ex.memory.grow(Math.ceil((arena.top - have) / 65536));
  const i32 = new Int32Array(ex.memory.buffer);
  const f32 = new Float32Array(ex.memory.buffer);
  for (const w of writes) w(i32, f32);

  return {
    chunk: CHUNK,
    S,
    O,
    inputSizes,
    f32,
    states: states >> 2,
    inputs: inputs.map((p) => p >> 2),
    out: out >> 2,
    run: (n) => ex.run(plan, n),
  };
}
