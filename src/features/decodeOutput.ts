import type { Prediction } from '../events/types.js';
import type { OutputSpec } from './spec.js';
import { minmaxInverse, standardInverse } from './transforms.js';

/**
 * Adds a prediction's decoded fields beside its untouched `output`. The engine hands it a
 * prediction object of its own, just made, which it may extend in place and return.
 */
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
      // Added in place: the engine's fresh object (a copy per prediction was a measurable share
      // of the Kafka pipeline's garbage).
      const out = p as Record<string, unknown>;
      out.label = labels[best];
      out.probabilities = probabilities;
      return p;
    };
  }
  const field = spec.name ?? 'value';
  const inv = spec.inverse;
  const invert = inv?.minmax
    ? (y: number) => minmaxInverse(y, inv.minmax!)
    : inv?.standard
      ? (y: number) => standardInverse(y, inv.standard!)
      : (y: number) => y;
  // `__proto__` assigned would set the prototype; a spread makes it an own field, as JSON shows it.
  if (field === '__proto__') {
    return (p) => ({ ...p, [field]: p.output.length === 1 ? invert(p.output[0]) : p.output.map(invert) });
  }
  return (p) => {
    (p as Record<string, unknown>)[field] =
      p.output.length === 1 ? invert(p.output[0]) : p.output.map(invert);
    return p;
  };
}
