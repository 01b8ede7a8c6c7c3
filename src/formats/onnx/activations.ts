import { ModelInvalidError } from '../../errors.js';
import type { Activation } from '../../model/types.js';

/**
 * Where ONNX Runtime and the ONNX spec agree on a default alpha/beta. For Affine, ScaledTanh and
 * ThresholdedRelu they do not (ORT uses 0, the spec points at the deprecated ops' defaults), so
 * those must be given explicitly in activation_alpha/activation_beta.
 */
const DEFAULTS: Record<string, { alpha?: number; beta?: number }> = {
  leakyrelu: { alpha: 0.01 },
  hardsigmoid: { alpha: 0.2, beta: 0.5 },
  elu: { alpha: 1 },
};

/** Which of alpha/beta each ONNX recurrent activation consumes. */
const USES: Record<string, { alpha: boolean; beta: boolean }> = {
  sigmoid: { alpha: false, beta: false },
  tanh: { alpha: false, beta: false },
  relu: { alpha: false, beta: false },
  softsign: { alpha: false, beta: false },
  softplus: { alpha: false, beta: false },
  affine: { alpha: true, beta: true },
  scaledtanh: { alpha: true, beta: true },
  hardsigmoid: { alpha: true, beta: true },
  leakyrelu: { alpha: true, beta: false },
  thresholdedrelu: { alpha: true, beta: false },
  elu: { alpha: true, beta: false },
};

/**
 * Maps a recurrent node's `activations` list to canonical activations. `activation_alpha` and
 * `activation_beta` are consumed in list order, each only by the activations that take that
 * parameter (as ONNX Runtime does), falling back to the defaults both ORT and the spec agree on.
 */
export function onnxActivations(
  names: readonly string[],
  alphas: readonly number[],
  betas: readonly number[],
  node: string,
): Activation[] {
  let ai = 0;
  let bi = 0;
  return names.map((raw) => {
    const name = raw.toLowerCase();
    const uses = USES[name];
    if (!uses) {
      throw new ModelInvalidError(`node '${node}' uses activation '${raw}', which ONNX does not define`);
    }
    const take = (which: 'alpha' | 'beta'): number => {
      const list = which === 'alpha' ? alphas : betas;
      const i = which === 'alpha' ? ai++ : bi++;
      if (i < list.length) return list[i];
      const d = DEFAULTS[name]?.[which];
      if (d === undefined) {
        throw new ModelInvalidError(
          `node '${node}': activation ${raw} needs an explicit activation_${which} ` +
            '(ONNX Runtime and the ONNX spec disagree on its default)',
        );
      }
      return d;
    };
    const alpha = uses.alpha ? take('alpha') : 0;
    const beta = uses.beta ? take('beta') : 0;
    switch (name) {
      case 'sigmoid':
      case 'tanh':
      case 'relu':
      case 'softsign':
      case 'softplus':
        return { kind: name };
      case 'affine':
        return { kind: 'affine', alpha, beta };
      case 'scaledtanh':
        return { kind: 'scaled_tanh', alpha, beta };
      case 'hardsigmoid':
        return { kind: 'hard_sigmoid', alpha, beta };
      case 'leakyrelu':
        return { kind: 'leaky_relu', alpha };
      case 'thresholdedrelu':
        return { kind: 'thresholded_relu', alpha };
      default:
        return { kind: 'elu', alpha };
    }
  });
}
