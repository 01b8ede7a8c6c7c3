import { eventLimitsOf } from '../config/eventLimits.js';
import type { Config } from '../config/schema.js';
import type { KeyedStepperOptions } from '../engine/keyedStepper.js';
import { modelFeatures } from '../features/modelFeatures.js';
import type { Model } from '../model/types.js';
import type { StateStore } from '../state/types.js';
import { parseDuration } from '../time/duration.js';

/**
 * What `serve` steps one model with, from its configuration: the model's feature spec, the event
 * limits, the id window, the TTL and the mismatch policy. One place for the single-model engine and
 * for each model of a rollout, so both read the configuration alike.
 */
export function stepperOptionsOf(
  config: Config,
  model: Model,
  store: StateStore,
  modelLabel: string | undefined,
): KeyedStepperOptions {
  const features = modelFeatures(model);
  return {
    model,
    store,
    onModelMismatch: config.model.onMismatch,
    limits: eventLimitsOf(config.events),
    idWindow: config.state.idWindow,
    encodeValues: features?.encodeValues,
    decodePrediction: features?.decode,
    ...(config.state.ttl === undefined
      ? {}
      : { ttl: { ttlMs: parseDuration(config.state.ttl, 'state.ttl'), clock: config.state.ttlClock } }),
    ...(modelLabel === undefined ? {} : { modelLabel }),
  };
}
