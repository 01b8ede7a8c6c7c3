import { type ScalarFn, scalarActivation } from './activations.js';
import type { LstmLayer } from './types.js';

/** An LSTM layer with its activations resolved and a scratch buffer, ready to step. */
export interface LstmPlan {
  readonly layer: LstmLayer;
  readonly f: ScalarFn;
  readonly g: ScalarFn;
  readonly h: ScalarFn;
  readonly clip: number;
  /** Gate pre-activations; float64 so the dot products accumulate without float32 rounding. */
  readonly pre: Float64Array;
}

export function planLstm(layer: LstmLayer): LstmPlan {
  return {
    layer,
    f: scalarActivation(layer.activations.f),
    g: scalarActivation(layer.activations.g),
    h: scalarActivation(layer.activations.h),
    clip: layer.clip ?? Number.POSITIVE_INFINITY,
    pre: new Float64Array(4 * layer.hiddenSize),
  };
}

/**
 * One LSTM step as the ONNX operator defines it, in place: reads x from `x[xOff…]` and h_{t−1},
 * C_{t−1} from `s[hOff…]`, `s[cOff…]`, writes h_t and C_t back there.
 * Gate order i, f, g, o. Peepholes: i and f see C_{t−1}, o sees C_t. Clip bounds each
 * pre-activation after bias and peephole are added.
 */
export function lstmStep(
  p: LstmPlan,
  x: ArrayLike<number>,
  xOff: number,
  s: Float32Array,
  hOff: number,
  cOff: number,
): void {
  const { W, R, b, inputSize: I, hiddenSize: H, peephole, inputForget } = p.layer;
  const pre = p.pre;
  const G = 4 * H;
  // All recurrent products read h_{t−1} before any of it is overwritten.
  for (let j = 0; j < G; j++) {
    let acc = b[j];
    const wRow = j * I;
    for (let k = 0; k < I; k++) acc += W[wRow + k] * x[xOff + k];
    const rRow = j * H;
    for (let k = 0; k < H; k++) acc += R[rRow + k] * s[hOff + k];
    pre[j] = acc;
  }
  const clip = p.clip;
  for (let u = 0; u < H; u++) {
    const cPrev = s[cOff + u];
    let ai = pre[u];
    if (peephole) ai += peephole.i[u] * cPrev;
    const it = p.f(bound(ai, clip));
    let ft: number;
    if (inputForget) {
      ft = 1 - it;
    } else {
      let af = pre[H + u];
      if (peephole) af += peephole.f[u] * cPrev;
      ft = p.f(bound(af, clip));
    }
    const gt = p.g(bound(pre[2 * H + u], clip));
    // Rounded to float32 as the frameworks hold it, before the output gate's peephole reads it.
    const ct = Math.fround(ft * cPrev + it * gt);
    let ao = pre[3 * H + u];
    if (peephole) ao += peephole.o[u] * ct;
    const ot = p.f(bound(ao, clip));
    s[cOff + u] = ct;
    s[hOff + u] = ot * p.h(ct);
  }
}

/** Clamps to [−clip, clip]; with no clip (Infinity) it is the identity. */
export function bound(v: number, clip: number): number {
  return v > clip ? clip : Math.max(v, -clip);
}
