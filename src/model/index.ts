export { activationName, scalarActivation } from './activations.js';
export { describeModel } from './describe.js';
export { modelFingerprint } from './fingerprint.js';
export { type LayerSlot, type StateLayout, stateLayout } from './layout.js';
export { createState, outputSize, runSequence, stateSize, step, stepBatch } from './network.js';
export type * from './types.js';
export { validateModel } from './validate.js';
