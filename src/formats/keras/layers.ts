import { ModelInvalidError } from '../../errors.js';
import type { DenseLayer, GruLayer, LstmLayer } from '../../model/index.js';
import { kerasActivation, kerasHeadActivation } from './activations.js';
import type { LayerSpec } from './config.js';
import type { Tensor } from './h5.js';
import type { LayerWeights } from './weights.js';

/*
 * Keras stores kernels as (inputs, gates·H) and recurrent kernels as (H, gates·H); the canonical
 * model wants [gates·H, inputs], so each is transposed. Keras's LSTM gate order i, f, c, o already
 * is the canonical i, f, g, o, and its GRU order z, r, h is the canonical one, so no gate moves.
 */

/** An LSTM layer in canonical layout. */
export function lstmLayer(spec: LayerSpec, w: LayerWeights, kerasMajor: number): LstmLayer {
  const { I, H, W, R } = recurrentMatrices(spec, w, 4);
  const b = w.bias ? expectShape(spec, 'bias', w.bias, [4 * H]).data : new Float32Array(4 * H);
  const g = kerasActivation(spec, 'activation', kerasMajor, 'tanh');
  return {
    kind: 'lstm',
    inputSize: I,
    hiddenSize: H,
    W,
    R,
    b,
    inputForget: false,
    activations: { f: kerasActivation(spec, 'recurrent_activation', kerasMajor, 'sigmoid'), g, h: g },
  };
}

/**
 * A GRU layer in canonical layout. `reset_after=True` keeps a (2, 3H) bias, input row then recurrent
 * row, and applies the reset gate after the recurrent product; `reset_after=False` has one (3H) bias
 * on the input side.
 */
export function gruLayer(spec: LayerSpec, w: LayerWeights, kerasMajor: number): GruLayer {
  const { I, H, W, R } = recurrentMatrices(spec, w, 3);
  const resetAfter = spec.config.reset_after !== false;
  let bW = new Float32Array(3 * H);
  let bR = new Float32Array(3 * H);
  if (w.bias && resetAfter) {
    const both = expectShape(spec, 'bias', w.bias, [2, 3 * H]).data;
    bW = both.slice(0, 3 * H);
    bR = both.slice(3 * H);
  } else if (w.bias) {
    bW = expectShape(spec, 'bias', w.bias, [3 * H]).data;
  }
  return {
    kind: 'gru',
    inputSize: I,
    hiddenSize: H,
    W,
    R,
    bW,
    bR,
    linearBeforeReset: resetAfter,
    activations: {
      f: kerasActivation(spec, 'recurrent_activation', kerasMajor, 'sigmoid'),
      g: kerasActivation(spec, 'activation', kerasMajor, 'tanh'),
    },
  };
}

/** A Dense layer in canonical layout: kernel (in, out) becomes W [out, in]. */
export function denseLayer(spec: LayerSpec, w: LayerWeights, kerasMajor: number): DenseLayer {
  if (w.kernel.shape.length !== 2) throw shapeError(spec, 'kernel', w.kernel, 'two dimensions');
  const [inputSize, outputSize] = w.kernel.shape;
  const b = w.bias ? expectShape(spec, 'bias', w.bias, [outputSize]).data : new Float32Array(outputSize);
  return {
    kind: 'dense',
    inputSize,
    outputSize,
    W: transpose(w.kernel),
    b,
    activation: kerasHeadActivation(spec, kerasMajor),
  };
}

function recurrentMatrices(spec: LayerSpec, w: LayerWeights, gates: number) {
  const H = Number(spec.config.units);
  if (!(Number.isInteger(H) && H > 0)) {
    throw new ModelInvalidError(`layer '${spec.name}' has no positive 'units' in its config`);
  }
  if (w.kernel.shape.length !== 2) throw shapeError(spec, 'kernel', w.kernel, 'two dimensions');
  const I = w.kernel.shape[0];
  expectShape(spec, 'kernel', w.kernel, [I, gates * H]);
  if (!w.recurrentKernel) throw new ModelInvalidError(`layer '${spec.name}' has no recurrent kernel`);
  expectShape(spec, 'recurrent kernel', w.recurrentKernel, [H, gates * H]);
  return { I, H, W: transpose(w.kernel), R: transpose(w.recurrentKernel) };
}

/** (rows, cols) row-major → (cols, rows) row-major. */
function transpose(t: Tensor): Float32Array {
  const [rows, cols] = t.shape;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c];
  return out;
}

function expectShape(spec: LayerSpec, what: string, t: Tensor, shape: readonly number[]): Tensor {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw shapeError(spec, what, t, `(${shape.join(', ')})`);
  }
  return t;
}

function shapeError(spec: LayerSpec, what: string, t: Tensor, wanted: string): ModelInvalidError {
  return new ModelInvalidError(
    `${spec.className} '${spec.name}': ${what} has shape (${t.shape.join(', ')}), expected ${wanted}`,
  );
}
