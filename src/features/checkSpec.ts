import { FeatureSpecError } from '../errors.js';
import { activationName, outputSize } from '../model/index.js';
import type { Model } from '../model/types.js';
import type { FeatureDef, FeatureSpec } from './spec.js';

/** How many input values a feature fills: one, or one per one-hot category. */
export function featureWidth(f: FeatureDef): number {
  return f.onehot ? f.onehot.length : 1;
}

/**
 * Checks that `spec` fits `model`: one feature list per model input and no other, each exactly as
 * wide as its input, and class labels matching a softmax output. Throws `FeatureSpecError`
 * naming `where` and the spec key at fault.
 */
export function checkSpecFitsModel(spec: FeatureSpec, model: Model, where: string): void {
  const fail = (key: string, detail: string): never => {
    throw new FeatureSpecError(`feature spec ${where} does not fit model '${model.name}': ${key}: ${detail}`);
  };
  const names = model.inputs.map((i) => `'${i.name}' (${i.size} values)`).join(', ');
  for (const name of Object.keys(spec.inputs)) {
    if (!model.inputs.some((i) => i.name === name)) {
      fail(`inputs.${name}`, `the model has no input '${name}'; its inputs are ${names}`);
    }
  }
  for (const input of model.inputs) {
    const features = spec.inputs[input.name];
    if (!features) fail('inputs', `the model's input '${input.name}' (${input.size} values) has no features`);
    const width = features.reduce((n, f) => n + featureWidth(f), 0);
    if (width !== input.size) {
      const parts = features.map((f) => `${f.name} ${featureWidth(f)}`).join(', ');
      fail(
        `inputs.${input.name}`,
        `the features are ${width} values wide (${parts}), the model's input takes ${input.size}`,
      );
    }
  }
  const out = spec.output;
  if (out?.kind === 'classes') {
    const size = outputSize(model);
    if (out.labels.length !== size) {
      fail('output.labels', `${out.labels.length} labels for the model's ${size} outputs`);
    }
    const last = model.head.at(-1)?.activation;
    if (last?.kind !== 'softmax') {
      fail(
        'output.kind',
        `classes needs a network that ends in softmax, and this one ends in ${last ? activationName(last) : 'a recurrent layer'}`,
      );
    }
  }
}
