import { stepBatch } from '../network.js';
import type { Kernel } from './types.js';

/** The reference path (float64 accumulation, scalar JS): the oracle other kernels are tested against. */
export const referenceKernel: Kernel = {
  name: 'js-reference',
  supports: () => true,
  stepBatch,
};
