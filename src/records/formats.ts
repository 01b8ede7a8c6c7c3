import type { Envelope, Rejected } from '../engine/types.js';
import type { EventLimits } from '../events/limits.js';
import type { Prediction } from '../events/types.js';
import { embeddedSpec } from '../features/modelFeatures.js';
import type { ConsumedMessage, OutgoingMessage } from '../kafka/adapter.js';
import { outputSize } from '../model/index.js';
import type { Model } from '../model/types.js';
import {
  inputConfig,
  outputConfig,
  type RecordInputConfig,
  type RecordOutputConfig,
  type RegistryConfig,
  registrySchema,
} from './config.js';
import { RecordDecoder } from './decode.js';
import { PredictionEncoder } from './encode.js';
import { RegistryClient } from './registry.js';

/** The record-format settings of a Kafka pipeline (`kafka.input`, `kafka.output`, `kafka.registry`). */
export interface RecordFormatOptions {
  readonly input?: Partial<RecordInputConfig>;
  readonly output?: Partial<RecordOutputConfig>;
  readonly registry?: Partial<RegistryConfig> & { url: string };
}

/** What a pipeline plugs into its source and sink; all absent for plain JSON in and out. */
export interface RecordFormats {
  readonly decode?: (
    topic: string,
    partition: number,
    messages: readonly ConsumedMessage[],
    limits?: EventLimits,
    now?: number,
  ) => Promise<Array<Envelope | Rejected>>;
  readonly encodePrediction?: (prediction: Prediction) => OutgoingMessage;
}

/** The feature spec's named values a record can carry: every feature not derived from time. */
export function specValueNames(model: Model): string[] {
  const spec = embeddedSpec(model);
  if (!spec) return [];
  return Object.values(spec.inputs).flatMap((features) =>
    features.filter((f) => f.derived === undefined).map((f) => f.name),
  );
}

/**
 * The decoder and encoder for `options` (registering the output schema, so this talks to the
 * registry once at start). Plain JSON in and out gives neither: the pipeline runs as before.
 */
export async function recordFormats(
  model: Model,
  outputTopic: string,
  options: RecordFormatOptions,
  maxJsonDepth?: number,
): Promise<RecordFormats> {
  const input = inputConfig(options.input);
  const output = outputConfig(options.output);
  const registry = options.registry ? new RegistryClient(registrySchema.parse(options.registry)) : undefined;
  const plainIn = input.format === 'json' && input.cloudEvents === 'off' && input.mapping === undefined;
  const plainOut = output.format === 'json' && output.cloudEvents === 'off';
  let decode: RecordFormats['decode'];
  if (!plainIn) {
    const decoder = new RecordDecoder({
      input,
      ...(registry ? { registry } : {}),
      specValueNames: specValueNames(model),
      ...(maxJsonDepth === undefined ? {} : { maxJsonDepth }),
    });
    decode = (topic, partition, messages, limits, now) =>
      decoder.decodeAll(topic, partition, messages, limits, now);
  }
  let encodePrediction: RecordFormats['encodePrediction'];
  if (!plainOut) {
    const spec = embeddedSpec(model);
    const encoder = await PredictionEncoder.create({
      output,
      ...(registry ? { registry } : {}),
      topic: outputTopic,
      shape: { outputs: outputSize(model), ...(spec?.output ? { output: spec.output } : {}) },
    });
    encodePrediction = (p) => encoder.encode(p);
  }
  return { ...(decode ? { decode } : {}), ...(encodePrediction ? { encodePrediction } : {}) };
}
