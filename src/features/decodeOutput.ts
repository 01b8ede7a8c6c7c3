import type { Prediction } from '../events/types.js';
import type { OutputSpec } from './spec.js';
import { minmaxInverse, standardInverse } from './transforms.js';

/** Adds a prediction's decoded fields beside its untouched `output`. */
export type PredictionDecoder = (prediction: Prediction) => Prediction;

/**
 * The decoder of an output spec: regression adds the inverse-scaled value under its `name`
 * (default `value`; an array when the network has several outputs); classes adds the argmax
 * `label` and `probabilities` by label.
 */
export function outputDecoder(spec: OutputSpec): PredictionDecoder {
  if (spec.kind === 'classes') {
    const labels = spec.labels;
    return (p) => {
      let best = 0;
      for (let i = 1; i < p.output.length; i++) if (p.output[i] > p.output[best]) best = i;
      const probabilities = Object.fromEntries(labels.map((label, i) => [label, p.output[i]]));
      return { ...p, label: labels[best], probabilities };
    };
  }
  const field = spec.name ?? 'value';
  const inv = spec.inverse;
  const invert = inv?.minmax
    ? (y: number) => minmaxInverse(y, inv.minmax!)
    : inv?.standard
      ? (y: number) => standardInverse(y, inv.standard!)
      : (y: number) => y;
  return (p) => ({ ...p, [field]: p.output.length === 1 ? invert(p.output[0]) : p.output.map(invert) });
}
