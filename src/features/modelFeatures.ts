import type { Model } from '../model/types.js';
import { checkSpecFitsModel } from './checkSpec.js';
import { outputDecoder, type PredictionDecoder } from './decodeOutput.js';
import type { ValuesEncoder } from './encodeInputs.js';
import { type FeatureSpec, parseFeatureSpec } from './spec.js';
import { valuesEncoder } from './valuesEncoder.js';

/** A spec made ready for one model: what the engine encodes events with and decodes predictions with. */
export interface ModelFeatures {
  readonly spec: FeatureSpec;
  readonly encodeValues: ValuesEncoder;
  /** Absent when the spec says nothing about the output. */
  readonly decode?: PredictionDecoder;
}

/** A spec given beside the model (a `--spec` file), and where it came from, for error messages. */
export interface SidecarSpec {
  readonly spec: FeatureSpec;
  readonly where: string;
}

/** The spec a model carries in `metadata.features` (cellstream's own format), checked; undefined if none. */
export function embeddedSpec(model: Model): FeatureSpec | undefined {
  const json = model.metadata?.['features'];
  return json === undefined
    ? undefined
    : parseFeatureSpec(json, `metadata.features of model '${model.name}'`);
}

/** `model` carrying `spec` in its metadata, as `convert` saves it. The numbers (and fingerprint) are unchanged. */
export function withSpec(model: Model, spec: FeatureSpec): Model {
  return { ...model, metadata: { ...model.metadata, features: spec } };
}

/**
 * The features of `model`: those of `sidecar` when given (a `--spec` file wins over an embedded
 * spec), else the model's own, else undefined. Throws `FeatureSpecError` when the spec does not fit.
 */
export function modelFeatures(model: Model, sidecar?: SidecarSpec): ModelFeatures | undefined {
  const where = sidecar?.where ?? `metadata.features of model '${model.name}'`;
  const spec = sidecar?.spec ?? embeddedSpec(model);
  if (!spec) return undefined;
  checkSpecFitsModel(spec, model, where);
  return {
    spec,
    encodeValues: valuesEncoder(spec, model),
    ...(spec.output ? { decode: outputDecoder(spec.output) } : {}),
  };
}
