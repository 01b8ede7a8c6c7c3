/**
 * The memory map shared with assembly/kernel.ts: descriptor field offsets, activation codes, and
 * the weight packing. Offsets here and there must agree; the kernel tests catch any drift.
 */
import type { Activation, DenseLayer, GruLayer, HeadActivation, LstmLayer } from '../../types.js';

export const LAYER_BYTES = 96;
export const HEAD_BYTES = 48;
export const PLAN_BYTES = 64;

/** Layer descriptor fields, in i32 words. */
export const D = {
  kind: 0,
  I: 1,
  H: 2,
  G: 3,
  x: 4,
  xStride: 5,
  hOff: 6,
  cOff: 7,
  w: 8,
  b: 9,
  p: 10,
  flags: 11,
  clip: 12,
  act: 13,
  scratch: 22,
} as const;

/** Head (dense) descriptor fields, in i32 words. */
export const E = {
  K: 0,
  O: 1,
  G: 2,
  w: 3,
  b: 4,
  act: 5,
  in: 8,
  inStride: 9,
  out: 10,
  outStride: 11,
} as const;

/** Plan header fields, in i32 words. */
export const P = {
  nLayers: 0,
  layers: 1,
  nHead: 2,
  head: 3,
  states: 4,
  stride: 5,
  xh: 6,
  nCopy: 7,
  copies: 8,
  concat: 9,
  concatStride: 10,
  result: 11,
  resultStride: 12,
  out: 13,
  O: 14,
} as const;

const ACTIVATION_CODES = {
  sigmoid: 0,
  tanh: 1,
  relu: 2,
  linear: 3,
  hard_sigmoid: 4,
  affine: 5,
  leaky_relu: 6,
  thresholded_relu: 7,
  scaled_tanh: 8,
  elu: 9,
  softsign: 10,
  softmax: 11,
} as const;

/** [code, alpha, beta], or undefined for an activation the kernel leaves to the reference (softplus). */
export function activationCode(a: HeadActivation): [number, number, number] | undefined {
  if (a.kind === 'softplus') return undefined;
  const code = ACTIVATION_CODES[a.kind];
  const alpha = 'alpha' in a ? a.alpha : 0;
  const beta = 'beta' in a ? a.beta : 0;
  return [code, alpha, beta];
}

export function activationsSupported(acts: readonly (Activation | HeadActivation)[]): boolean {
  return acts.every((a) => activationCode(a) !== undefined);
}

/** sigmoid/tanh/tanh with no peepholes, clip or coupling: the kernel's dispatch-free path. */
export function isPlainLstm(l: LstmLayer): boolean {
  const { f, g, h } = l.activations;
  return (
    f.kind === 'sigmoid' &&
    g.kind === 'tanh' &&
    h.kind === 'tanh' &&
    !l.peephole &&
    !l.inputForget &&
    (l.clip === undefined || l.clip === Number.POSITIVE_INFINITY)
  );
}

/** Groups of 4 units. */
export const groups = (n: number) => Math.ceil(n / 4);

/**
 * LSTM weights: per group of 4 units, K = I + H rows of 16 floats (i, f, g, o × 4 units), rows
 * < I from W and the rest from R, so one pass over K fills the four gate vectors of the group.
 */
export function packLstmWeights(l: LstmLayer): { w: Float32Array; b: Float32Array; p: Float32Array } {
  const { inputSize: I, hiddenSize: H, W, R, b: bias, peephole } = l;
  const G = groups(H);
  const K = I + H;
  const w = new Float32Array(G * K * 16);
  const b = new Float32Array(G * 16);
  const p = new Float32Array(G * 12);
  for (let u = 0; u < H; u++) {
    const g = u >> 2;
    const lane = u & 3;
    for (let gate = 0; gate < 4; gate++) {
      const row = gate * H + u;
      const col = gate * 4 + lane;
      const base = g * K * 16 + col;
      for (let k = 0; k < I; k++) w[base + k * 16] = W[row * I + k];
      for (let k = 0; k < H; k++) w[base + (I + k) * 16] = R[row * H + k];
      b[g * 16 + col] = bias[row];
    }
    if (peephole) {
      p[g * 12 + lane] = peephole.i[u];
      p[g * 12 + 4 + lane] = peephole.f[u];
      p[g * 12 + 8 + lane] = peephole.o[u];
    }
  }
  return { w, b, p };
}

/**
 * GRU weights: per group, K rows of 12 floats (z, r, n × 4 units); biases per group z and r
 * summed (bW + bR), then the candidate's bW and bR apart, as the reset gate needs them.
 */
export function packGruWeights(l: GruLayer): { w: Float32Array; b: Float32Array } {
  const { inputSize: I, hiddenSize: H, W, R, bW, bR } = l;
  const G = groups(H);
  const K = I + H;
  const w = new Float32Array(G * K * 12);
  const b = new Float32Array(G * 16);
  for (let u = 0; u < H; u++) {
    const g = u >> 2;
    const lane = u & 3;
    for (let gate = 0; gate < 3; gate++) {
      const row = gate * H + u;
      const base = g * K * 12 + gate * 4 + lane;
      for (let k = 0; k < I; k++) w[base + k * 12] = W[row * I + k];
      for (let k = 0; k < H; k++) w[base + (I + k) * 12] = R[row * H + k];
    }
    b[g * 16 + lane] = bW[u] + bR[u];
    b[g * 16 + 4 + lane] = bW[H + u] + bR[H + u];
    b[g * 16 + 8 + lane] = bW[2 * H + u];
    b[g * 16 + 12 + lane] = bR[2 * H + u];
  }
  return { w, b };
}

/** Dense weights: per group of 4 outputs, K rows of 4 floats. */
export function packDenseWeights(d: DenseLayer): { w: Float32Array; b: Float32Array } {
  const { inputSize: K, outputSize: O, W, b: bias } = d;
  const G = groups(O);
  const w = new Float32Array(G * K * 4);
  const b = new Float32Array(G * 4);
  for (let o = 0; o < O; o++) {
    const base = (o >> 2) * K * 4 + (o & 3);
    for (let k = 0; k < K; k++) w[base + k * 4] = W[o * K + k];
    b[o] = bias[o];
  }
  return { w, b };
}
