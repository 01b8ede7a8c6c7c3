import { identity, map, type OperatorFunction } from 'rxjs';
import type { PredictionDecoder } from '../features/decodeOutput.js';
import type { Outcome } from './types.js';

/** Adds the feature spec's decoded fields to every prediction outcome; passes everything else through. */
export function decodePredictions(decode: PredictionDecoder | undefined): OperatorFunction<Outcome, Outcome> {
  if (!decode) return identity;
  return map((o) => (o.kind === 'prediction' ? { ...o, prediction: decode(o.prediction) } : o));
}
