import type { Activation, HeadActivation } from '../../model/types.js';

/**
 * How `hard_sigmoid` is meant by whoever wrote the file: TF.js and Keras 2 clip(0.2x + 0.5),
 * Keras 3 clip(x/6 + 0.5). A model.json converted from Keras 3 keeps Keras 3's meaning.
 */
export type HardSigmoidFlavour = 'keras2' | 'keras3';

/** Which `hard_sigmoid` a model.json means, from the `keras_version` its topology records. */
export function hardSigmoidFlavour(kerasVersion: unknown): HardSigmoidFlavour {
  return typeof kerasVersion === 'string' && /^3\./.test(kerasVersion) ? 'keras3' : 'keras2';
}

/**
 * An activation name as a layers model.json spells it, normalised for lookup.
 * tfjs-layers saves names snake_cased (`hard_sigmoid`) although its JS API takes camelCase
 * (`hardSigmoid`); hand-edited or older files may carry either, so both are folded together.
 */
function normalise(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/** The activation's name, whether the config holds a string or a serialised `{class_name, config}`. */
export function activationName(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'object') {
    const o = value as Record<string, unknown>;
    const inner = o['config'] as Record<string, unknown> | undefined;
    // Keras 3 may write {"module": "keras.activations", "class_name": "function", "config": "tanh"}.
    if (typeof inner === 'string') return inner;
    if (inner && typeof inner['name'] === 'string') return inner['name'];
    if (typeof o['class_name'] === 'string') return o['class_name'];
  }
  return undefined;
}

/**
 * Maps a layer config's activation to the canonical one, or returns undefined when cellstream
 * cannot run it. A missing activation is linear, as in Keras.
 */
export function elementwiseActivation(value: unknown, flavour: HardSigmoidFlavour): Activation | undefined {
  const name = activationName(value);
  if (name === undefined) return { kind: 'linear' };
  switch (normalise(name)) {
    case 'linear':
      return { kind: 'linear' };
    case 'sigmoid':
      return { kind: 'sigmoid' };
    case 'tanh':
      return { kind: 'tanh' };
    case 'relu':
      return { kind: 'relu' };
    case 'hard_sigmoid':
      return flavour === 'keras3'
        ? { kind: 'hard_sigmoid', alpha: 1 / 6, beta: 0.5 }
        : { kind: 'hard_sigmoid', alpha: 0.2, beta: 0.5 };
    case 'elu':
      // Keras's elu activation function has alpha 1; the ELU *layer* is a different thing.
      return { kind: 'elu', alpha: 1 };
    case 'softsign':
      return { kind: 'softsign' };
    case 'softplus':
      return { kind: 'softplus' };
    default:
      return undefined;
  }
}

/** Like `elementwiseActivation`, plus softmax, which only a dense head may use. */
export function headActivation(value: unknown, flavour: HardSigmoidFlavour): HeadActivation | undefined {
  const name = activationName(value);
  if (name !== undefined && normalise(name) === 'softmax') return { kind: 'softmax' };
  return elementwiseActivation(value, flavour);
}
