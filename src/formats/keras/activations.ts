import { UnsupportedLayerError } from '../../errors.js';
import type { Activation, HeadActivation } from '../../model/index.js';
import type { LayerSpec } from './config.js';

/**
 * `hard_sigmoid` changed meaning between Keras generations: Keras 2 clips 0.2·x + 0.5, Keras 3
 * clips x/6 + 0.5 (relu6(x + 3) / 6). The file's recorded keras_version decides.
 */
function hardSigmoid(kerasMajor: number): Activation {
  return kerasMajor >= 3
    ? { kind: 'hard_sigmoid', alpha: 1 / 6, beta: 0.5 }
    : { kind: 'hard_sigmoid', alpha: 0.2, beta: 0.5 };
}

function activationName(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  // Keras 3 may serialise a built-in activation as {class_name: 'function', config: 'relu'}.
  if (value && typeof value === 'object' && typeof (value as { config?: unknown }).config === 'string') {
    return (value as { config: string }).config;
  }
  return undefined;
}

/**
 * The canonical form of an element-wise Keras activation named in `layer.config[field]`;
 * `fallback` is Keras's default for a field the config leaves out.
 */
export function kerasActivation(
  layer: LayerSpec,
  field: string,
  kerasMajor: number,
  fallback = 'linear',
): Activation {
  const name = activationName(layer.config[field] ?? fallback);
  switch (name) {
    case 'linear':
    case 'relu':
    case 'sigmoid':
    case 'tanh':
    case 'softsign':
    case 'softplus':
      return { kind: name };
    case 'elu':
      return { kind: 'elu', alpha: 1 };
    case 'hard_sigmoid':
      return hardSigmoid(kerasMajor);
    default:
      throw new UnsupportedLayerError(
        layer.className,
        layer.name,
        `${field} '${name ?? JSON.stringify(layer.config[field])}' is not supported`,
      );
  }
}

/** Like `kerasActivation`, plus softmax, which only a dense layer may end in. */
export function kerasHeadActivation(layer: LayerSpec, kerasMajor: number): HeadActivation {
  return activationName(layer.config.activation) === 'softmax'
    ? { kind: 'softmax' }
    : kerasActivation(layer, 'activation', kerasMajor);
}
