import { type ScalarFn, scalarActivation } from './activations.js';
import { bound } from './lstm.js';
import type { GruLayer } from './types.js';

/** A GRU layer with its activations resolved and scratch buffers, ready to step. */
export interface GruPlan {
  readonly layer: GruLayer;
  readonly f: ScalarFn;
  readonly g: ScalarFn;
  readonly clip: number;
  /** W·x + bW for the three gates. */
  readonly xg: Float64Array;
  /** Recurrent products for the three gates (the candidate's as each variant defines it). */
  readonly hg: Float64Array;
  /** r ⊙ h_{t−1}, for linearBeforeReset = false. */
  readonly rh: Float64Array;
}

export function planGru(layer: GruLayer): GruPlan {
  const H = layer.hiddenSize;
  return {
    layer,
    f: scalarActivation(layer.activations.f),
    g: scalarActivation(layer.activations.g),
    clip: layer.clip ?? Number.POSITIVE_INFINITY,
    xg: new Float64Array(3 * H),
    hg: new Float64Array(3 * H),
    rh: new Float64Array(H),
  };
}

/**
 * One GRU step as the ONNX operator defines it, in place on `s[hOff…]` (gate order z, r, h):
 * h_t = (1 − z) ⊙ candidate + z ⊙ h_{t−1}. With `linearBeforeReset` the reset gate multiplies
 * the recurrent product (PyTorch, Keras reset_after=True); without, it multiplies h_{t−1} first.
 */
export function gruStep(p: GruPlan, x: ArrayLike<number>, xOff: number, s: Float32Array, hOff: number): void {
  const { W, R, bW, bR, inputSize: I, hiddenSize: H, linearBeforeReset } = p.layer;
  const { xg, hg, rh, clip } = p;
  for (let j = 0; j < 3 * H; j++) {
    let acc = bW[j];
    const row = j * I;
    for (let k = 0; k < I; k++) acc += W[row + k] * x[xOff + k];
    xg[j] = acc;
  }
  // z and r always use R·h_{t−1}; the candidate row block too when the reset comes after it.
  const recurrentRows = linearBeforeReset ? 3 * H : 2 * H;
  for (let j = 0; j < recurrentRows; j++) {
    let acc = bR[j];
    const row = j * H;
    for (let k = 0; k < H; k++) acc += R[row + k] * s[hOff + k];
    hg[j] = acc;
  }
  // r is needed whole before the non-linear-before-reset candidate product can start.
  for (let u = 0; u < H; u++) {
    const r = p.f(bound(xg[H + u] + hg[H + u], clip));
    hg[H + u] = r;
    rh[u] = r * s[hOff + u];
  }
  if (!linearBeforeReset) {
    for (let j = 0; j < H; j++) {
      let acc = bR[2 * H + j];
      const row = (2 * H + j) * H;
      for (let k = 0; k < H; k++) acc += R[row + k] * rh[k];
      hg[2 * H + j] = acc;
    }
  }
  for (let u = 0; u < H; u++) {
    const z = p.f(bound(xg[u] + hg[u], clip));
    const r = hg[H + u];
    const cand = linearBeforeReset
      ? p.g(bound(xg[2 * H + u] + r * hg[2 * H + u], clip))
      : p.g(bound(xg[2 * H + u] + hg[2 * H + u], clip));
    s[hOff + u] = (1 - z) * cand + z * s[hOff + u];
  }
}
