import type { Activation, HeadActivation } from './types.js';

/** A scalar function compiled once per layer, so the hot loop does no dispatch on the activation kind. */
export type ScalarFn = (x: number) => number;

const sigmoid: ScalarFn = (x) => 1 / (1 + Math.exp(-x));
const relu: ScalarFn = (x) => Math.max(x, 0);
const identity: ScalarFn = (x) => x;

/** Returns the scalar function for an element-wise activation. */
export function scalarActivation(a: Activation): ScalarFn {
  switch (a.kind) {
    case 'sigmoid':
      return sigmoid;
    case 'tanh':
      return Math.tanh;
    case 'relu':
      return relu;
    case 'linear':
      return identity;
    case 'hard_sigmoid': {
      const { alpha, beta } = a;
      return (x) => Math.max(0, Math.min(1, alpha * x + beta));
    }
    case 'affine': {
      const { alpha, beta } = a;
      return (x) => alpha * x + beta;
    }
    case 'leaky_relu': {
      const { alpha } = a;
      return (x) => (x >= 0 ? x : alpha * x);
    }
    case 'thresholded_relu': {
      const { alpha } = a;
      return (x) => (x > alpha ? x : 0);
    }
    case 'scaled_tanh': {
      const { alpha, beta } = a;
      return (x) => alpha * Math.tanh(beta * x);
    }
    case 'elu': {
      const { alpha } = a;
      return (x) => (x >= 0 ? x : alpha * (Math.exp(x) - 1));
    }
    case 'softsign':
      return (x) => x / (1 + Math.abs(x));
    case 'softplus':
      // log1p(exp(x)) overflows for large x; the identity branch is exact there in float32.
      return (x) => (x > 30 ? x : Math.log1p(Math.exp(x)));
  }
}

/** Applies a head activation in place over `v[from, from+n)`; softmax normalises over that range. */
export function applyHeadActivation(a: HeadActivation, v: Float64Array, from: number, n: number): void {
  if (a.kind === 'softmax') {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = from; i < from + n; i++) if (v[i] > max) max = v[i];
    let sum = 0;
    for (let i = from; i < from + n; i++) {
      const e = Math.exp(v[i] - max);
      v[i] = e;
      sum += e;
    }
    for (let i = from; i < from + n; i++) v[i] /= sum;
    return;
  }
  if (a.kind === 'linear') return;
  const f = scalarActivation(a);
  for (let i = from; i < from + n; i++) v[i] = f(v[i]);
}

/** Short human-readable form, for `inspect` and error messages. */
export function activationName(a: HeadActivation): string {
  switch (a.kind) {
    case 'hard_sigmoid':
    case 'affine':
    case 'scaled_tanh':
      return `${a.kind}(${a.alpha}, ${a.beta})`;
    case 'leaky_relu':
    case 'thresholded_relu':
    case 'elu':
      return `${a.kind}(${a.alpha})`;
    default:
      return a.kind;
  }
}
