import { stepBatch } from '../network.js';
import { checkOut, gatherSession } from './session.js';
import type { Kernel } from './types.js';

/** The reference path (float64 accumulation, scalar JS): the oracle other kernels are tested against. */
export const referenceKernel: Kernel = {
  name: 'js-reference',
  supports: () => true,
  stepBatch(model, states, inputs, batch, out) {
    const y = stepBatch(model, states, inputs, batch);
    if (!out) return y;
    checkOut(out, y.length);
    out.set(y);
    return out;
  },
  session: (model, capacity) => gatherSession(referenceKernel, model, capacity),
};
