/**
 * The memory map shared with native/kernel.c: the descriptor it reads and the weight packing, in
 * groups of 8 hidden units (one AVX register per gate). The kernel tests catch any drift.
 */
import { stateLayout } from '../../layout.js';
import type { Activation, DenseLayer, GruLayer, HeadActivation, LstmLayer, Model } from '../../types.js';

/** Head activation codes (the C enum). */
const HEAD_CODES: Partial<Record<HeadActivation['kind'], number>> = {
  sigmoid: 0,
  tanh: 1,
  relu: 2,
  linear: 3,
  softmax: 11,
};

const is = (a: Activation, kind: Activation['kind']) => a.kind === kind;

/** The GRU the kernel runs: the reset before or after the recurrent product, sigmoid/tanh, no clip. */
function isNativeGru(l: GruLayer): boolean {
  return (
    is(l.activations.f, 'sigmoid') &&
    is(l.activations.g, 'tanh') &&
    (l.clip === undefined || l.clip === Number.POSITIVE_INFINITY)
  );
}

/** The LSTM the kernel runs: sigmoid/tanh/tanh, no clip; peepholes and coupled gates allowed. */
function isNativeLstm(l: LstmLayer): boolean {
  const { f, g, h } = l.activations;
  return (
    is(f, 'sigmoid') &&
    is(g, 'tanh') &&
    is(h, 'tanh') &&
    (l.clip === undefined || l.clip === Number.POSITIVE_INFINITY)
  );
}

/** Per-layer flags (the C enum): peepholes, coupled input and forget gates; a GRU's reset before. */
const F_PEEPHOLE = 1;
const F_COUPLED = 2;
const F_RESET_BEFORE = 4;

/**
 * Whether the native kernel runs `model`: every layer an LSTM with sigmoid/tanh/tanh and no clip
 * (peepholes and coupled input-forget gates included) or a GRU with the reset after the product
 * (PyTorch, Keras reset_after=True) or before it (Keras reset_after=False, ONNX's default) and
 * sigmoid/tanh, no clip; a head of linear, relu, sigmoid,
 * tanh or softmax layers. Multi-branch models too. Anything else goes to the wasm kernel.
 */
export function nativeSupports(model: Model): boolean {
  return (
    model.branches.every((b) =>
      b.layers.every((l) => (l.kind === 'lstm' ? isNativeLstm(l) : isNativeGru(l))),
    ) && model.head.every((d) => HEAD_CODES[d.activation.kind] !== undefined)
  );
}

const groups8 = (n: number) => Math.ceil(n / 8);

/**
 * LSTM: per group of 8 units, K = I + H rows of 32 floats (i, f, g, o × 8 units), rows < I from
 * W and the rest from R, so one pass over K fills the group's four gate vectors. Bias: 32 per
 * group; with peepholes, then 24 per group (p_i, p_f, p_o × 8 units).
 */
export function packLstm(l: LstmLayer): { w: Float32Array; b: Float32Array } {
  const { inputSize: I, hiddenSize: H, W, R, b: bias } = l;
  const G = groups8(H);
  const K = I + H;
  const w = new Float32Array(G * K * 32);
  const b = new Float32Array(G * (l.peephole ? 56 : 32));
  for (let u = 0; u < H; u++) {
    const g = u >> 3;
    const lane = u & 7;
    if (l.peephole) {
      b[G * 32 + g * 24 + lane] = l.peephole.i[u];
      b[G * 32 + g * 24 + 8 + lane] = l.peephole.f[u];
      b[G * 32 + g * 24 + 16 + lane] = l.peephole.o[u];
    }
    for (let gate = 0; gate < 4; gate++) {
      const row = gate * H + u;
      const base = g * K * 32 + gate * 8 + lane;
      for (let k = 0; k < I; k++) w[base + k * 32] = W[row * I + k];
      for (let k = 0; k < H; k++) w[base + (I + k) * 32] = R[row * H + k];
      b[g * 32 + gate * 8 + lane] = bias[row];
    }
  }
  return { w, b };
}

/**
 * GRU: the vectors z, r, n of group 0, then of group 1, … (3 per group of 8 units), in panels of
 * 4 vectors: per panel K rows of 32 floats, the last panel's missing vectors zero. Bias per group:
 * z and r summed (bW + bR), then the candidate's bW and bR apart, as the reset gate needs them.
 * With the reset before the product the candidate's recurrent rows multiply r ⊙ h, known only
 * after a first product: see packGruBefore.
 */
export function packGru(l: GruLayer): { w: Float32Array; b: Float32Array } {
  if (!l.linearBeforeReset) return packGruBefore(l);
  const { inputSize: I, hiddenSize: H, W, R } = l;
  const G = groups8(H);
  const K = I + H;
  const panels = Math.ceil((3 * G) / 4);
  const w = new Float32Array(panels * K * 32);
  for (let u = 0; u < H; u++) {
    const g = u >> 3;
    const lane = u & 7;
    for (let gate = 0; gate < 3; gate++) {
      const row = gate * H + u;
      const v = 3 * g + gate;
      const base = (v >> 2) * K * 32 + (v & 3) * 8 + lane;
      for (let k = 0; k < I; k++) w[base + k * 32] = W[row * I + k];
      for (let k = 0; k < H; k++) w[base + (I + k) * 32] = R[row * H + k];
    }
  }
  return { w, b: gruBias(l) };
}

function gruBias(l: GruLayer): Float32Array {
  const { hiddenSize: H, bW, bR } = l;
  const b = new Float32Array(groups8(H) * 32);
  for (let u = 0; u < H; u++) {
    const at = (u >> 3) * 32 + (u & 7);
    b[at] = bW[u] + bR[u];
    b[at + 8] = bW[H + u] + bR[H + u];
    b[at + 16] = bW[2 * H + u];
    b[at + 24] = bR[2 * H + u];
  }
  return b;
}

/**
 * GRU with the reset before the product: three matrices back to back, each in panels of 4
 * vectors with only its own rows (32 floats a row): the I input rows of z, r, n per group (as
 * packGru), the H recurrent rows of z, r per group (2 groups a panel), then the H recurrent rows
 * of n per group (4 groups a panel), which the kernel multiplies by r ⊙ h. Bias as packGru.
 */
function packGruBefore(l: GruLayer): { w: Float32Array; b: Float32Array } {
  const { inputSize: I, hiddenSize: H, W, R } = l;
  const G = groups8(H);
  const xF = Math.ceil((3 * G) / 4) * I * 32;
  const zrF = Math.ceil((2 * G) / 4) * H * 32;
  const w = new Float32Array(xF + zrF + Math.ceil(G / 4) * H * 32);
  // Vector v of a matrix with `rows` rows per panel: where its lane `lane`, row 0 lies.
  const at = (start: number, rows: number, v: number, lane: number) =>
    start + (v >> 2) * rows * 32 + (v & 3) * 8 + lane;
  for (let u = 0; u < H; u++) {
    const g = u >> 3;
    const lane = u & 7;
    for (let gate = 0; gate < 3; gate++) {
      const row = gate * H + u;
      const x = at(0, I, 3 * g + gate, lane);
      for (let k = 0; k < I; k++) w[x + k * 32] = W[row * I + k];
      const h = gate < 2 ? at(xF, H, 2 * g + gate, lane) : at(xF + zrF, H, g, lane);
      for (let k = 0; k < H; k++) w[h + k * 32] = R[row * H + k];
    }
  }
  return { w, b: gruBias(l) };
}

/** Dense: per group of 8 outputs, K rows of 8 floats. */
export function packDense(d: DenseLayer): { w: Float32Array; b: Float32Array } {
  const { inputSize: K, outputSize: O, W, b: bias } = d;
  const G = groups8(O);
  const w = new Float32Array(G * K * 8);
  const b = new Float32Array(G * 8);
  for (let o = 0; o < O; o++) {
    const base = (o >> 3) * K * 8 + (o & 7);
    for (let k = 0; k < K; k++) w[base + k * 8] = W[o * K + k];
    b[o] = bias[o];
  }
  return { w, b };
}

/** The descriptor and packed weights `create` takes (the layout is in native/kernel.c's js_create). */
export function describe(
  model: Model,
  chunk: number,
  capacity: number,
): { desc: Int32Array; weights: Float32Array[]; S: number; O: number } {
  const layout = stateLayout(model);
  const layers = model.branches.flatMap((br) => br.layers);
  const ints: number[] = [];
  const weights: Float32Array[] = [];
  const layerInts: number[] = [];
  const branchInts: number[] = [];
  let slot = 0;
  let concat = 0;
  for (const branch of model.branches) {
    const input = model.inputs.findIndex((i) => i.name === branch.input);
    let xState = -1;
    let last = layout.slots[slot];
    for (const layer of branch.layers) {
      const s = layout.slots[slot];
      layerInts.push(
        layer.kind === 'lstm' ? 0 : 1,
        layer.inputSize,
        layer.hiddenSize,
        input,
        xState,
        s.h,
        s.c,
        layer.kind === 'lstm'
          ? (layer.peephole ? F_PEEPHOLE : 0) | (layer.inputForget ? F_COUPLED : 0)
          : layer.linearBeforeReset
            ? 0
            : F_RESET_BEFORE,
      );
      const packed = layer.kind === 'lstm' ? packLstm(layer) : packGru(layer);
      weights.push(packed.w, packed.b);
      // The next layer reads this layer's fresh h straight from the state, as the reference does.
      xState = s.h;
      last = s;
      slot++;
    }
    branchInts.push(last.h, last.hiddenSize, concat);
    concat += last.hiddenSize;
  }
  const headInts: number[] = [];
  for (const d of model.head) {
    headInts.push(d.inputSize, d.outputSize, HEAD_CODES[d.activation.kind]!);
    const packed = packDense(d);
    weights.push(packed.w, packed.b);
  }
  const O = model.head.length > 0 ? model.head[model.head.length - 1].outputSize : concat;
  ints.push(
    layers.length,
    model.head.length,
    model.inputs.length,
    model.branches.length,
    layout.size,
    O,
    chunk,
    capacity,
    ...model.inputs.map((i) => i.size),
    ...layerInts,
    ...headInts,
    ...branchInts,
  );
  return { desc: Int32Array.from(ints), weights, S: layout.size, O };
}
