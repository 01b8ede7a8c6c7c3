/**
 * cellstream as a library: load a model, keep per-key recurrent state, step one event at a time.
 * The CLI (`cellstream replay | serve | inspect`) is built from these same parts.
 */
export { type ConfigSources, loadConfig } from './config/load.js';
export { type Config, configSchema } from './config/schema.js';
export { lastPositions } from './engine/commitPositions.js';
export type { ExpiryOptions } from './engine/expiry.js';
export { KeyedStepper, type KeyedStepperOptions, type StepperCounts } from './engine/keyedStepper.js';
export { Divergence, RolloutStepper, type SwitchResult } from './engine/rollout.js';
export { type StepByKeyOptions, type StepInput, stepByKey } from './engine/stepByKey.js';
export type { Envelope, Outcome, Rejected } from './engine/types.js';
export * from './errors.js';
export { decodeEvent, validateEvent } from './events/decode.js';
export {
  DEFAULT_EVENT_LIMITS,
  DEFAULT_MAX_TS_AHEAD_MS,
  type EventLimits,
  eventLimits,
  KEY_BYTES_CEILING,
} from './events/limits.js';
export type { Event, Position, Prediction } from './events/types.js';
export type { PredictionDecoder } from './features/decodeOutput.js';
export { type EncodeContext, encodeInputs, type ValuesEncoder } from './features/encodeInputs.js';
export { loadFeatureSpec } from './features/loadSpec.js';
export {
  embeddedSpec,
  type ModelFeatures,
  modelFeatures,
  type SidecarSpec,
  withSpec,
} from './features/modelFeatures.js';
export { type FeatureSpec, parseFeatureSpec } from './features/spec.js';
export { loadCellstreamManifest, saveCellstreamModel } from './formats/cellstream/index.js';
export { parseKerasModel } from './formats/keras/index.js';
export { loadModel, SUPPORTED_MODEL_FILES } from './formats/load.js';
export { parseOnnxModel } from './formats/onnx/index.js';
export { importTfjsLayers } from './formats/tfjs/index.js';
export * from './model/index.js';
export {
  type Kernel,
  type KernelChoice,
  type KernelOptions,
  type KernelSession,
  referenceKernel,
  selectKernel,
} from './model/kernels/index.js';
export {
  DEFAULT_WARM_BATCH,
  DEFAULT_WARM_STAGED_KEYS,
  type WarmOptions,
  type WarmSummary,
  warmKeys,
} from './rollout/warm.js';
export { type RunningServer, type ServeOptions, startServer } from './server/serve.js';
export { CachedStore, type CachedStoreOptions } from './state/cachedStore.js';
export { LmdbStore, type LmdbStoreOptions } from './state/lmdbStore.js';
export { MemoryStateStore, type MemoryStoreOptions } from './state/memoryStore.js';
export {
  LmdbModelStates,
  type ModelStates,
  openModelStates,
  openModelStore,
  type RolloutMeta,
} from './state/modelStates.js';
export type { StateRecord, StateStore } from './state/types.js';
