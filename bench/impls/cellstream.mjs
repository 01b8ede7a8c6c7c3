import { stateSize } from '../../dist/model/index.js';
import { referenceKernel, selectKernel } from '../../dist/model/kernels/index.js';

/** cellstream's kernels, stepped on a B × stateSize slab as the engine does. */
export function cellstreamImpl(kernelName) {
  const kernel = kernelName === 'js' ? referenceKernel : selectKernel({ kernel: 'wasm' });
  return {
    impl: kernelName === 'js' ? 'cellstream-js' : 'cellstream-wasm',
    async create(model, batch) {
      const states = new Float32Array(batch * stateSize(model));
      return {
        step: (x) => kernel.stepBatch(model, states, [x], batch),
        reset: () => states.fill(0),
        dispose() {},
      };
    },
  };
}
