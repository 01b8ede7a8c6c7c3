import { applyHeadActivation } from './activations.js';
import type { DenseLayer } from './types.js';

/** y[yOff…] = act(W·x[xOff…] + b), accumulated in float64. */
export function denseForward(
  layer: DenseLayer,
  x: ArrayLike<number>,
  xOff: number,
  y: Float64Array,
  yOff: number,
): void {
  const { W, b, inputSize: I, outputSize: O } = layer;
  for (let j = 0; j < O; j++) {
    let acc = b[j];
    const row = j * I;
    for (let k = 0; k < I; k++) acc += W[row + k] * x[xOff + k];
    y[yOff + j] = acc;
  }
  applyHeadActivation(layer.activation, y, yOff, O);
}
