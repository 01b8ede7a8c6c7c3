import type { DenseLayer, HeadActivation } from '../../model/types.js';

/**
 * Builds the dense head from the ops after the last recurrent node. Every function returns a new
 * array: a value's head is shared by every value derived from it, so nothing is edited in place.
 */

function identity(n: number): Float32Array {
  const W = new Float32Array(n * n);
  for (let i = 0; i < n; i++) W[i * n + i] = 1;
  return W;
}

/** Appends `y = W·x` (`W` is `[out, in]`) with a zero bias and no activation yet. */
export function appendLinear(head: readonly DenseLayer[], W: Float32Array, inSize: number, outSize: number) {
  const layer: DenseLayer = {
    kind: 'dense',
    inputSize: inSize,
    outputSize: outSize,
    W,
    b: new Float32Array(outSize),
    activation: { kind: 'linear' },
  };
  return [...head, layer];
}

/**
 * Adds a bias (`[width]`, already broadcast) to the last dense layer while it has no activation;
 * otherwise, or with no dense layer yet, an identity layer carries it so the result stays exact.
 */
export function addBias(head: readonly DenseLayer[], bias: Float32Array, width: number): DenseLayer[] {
  const last = head.at(-1);
  if (last && last.activation.kind === 'linear') {
    const b = last.b.map((v, i) => v + bias[i]);
    return [...head.slice(0, -1), { ...last, b }];
  }
  const layer: DenseLayer = {
    kind: 'dense',
    inputSize: width,
    outputSize: width,
    W: identity(width),
    b: bias.slice(),
    activation: { kind: 'linear' },
  };
  return [...head, layer];
}

/** Folds an activation into the last dense layer, or into a new identity layer when that one already has one. */
export function applyActivation(
  head: readonly DenseLayer[],
  activation: HeadActivation,
  width: number,
): DenseLayer[] {
  const last = head.at(-1);
  if (last && last.activation.kind === 'linear') {
    return [...head.slice(0, -1), { ...last, activation }];
  }
  const layer: DenseLayer = {
    kind: 'dense',
    inputSize: width,
    outputSize: width,
    W: identity(width),
    b: new Float32Array(width),
    activation,
  };
  return [...head, layer];
}
