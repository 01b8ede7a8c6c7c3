import { outputSize, stateSize } from '../../dist/model/index.js';
import {
  createNativeKernel,
  loadNative,
  referenceKernel,
  selectKernel,
} from '../../dist/model/kernels/index.js';
import { createOrtKernel, loadOrt } from '../../dist/model/kernels/ort/ortKernel.js';

/**
 * cellstream's kernels.
 * - 'wasm', 'native': a kernel session, the keys' states resident in the kernel between steps, as
 *   onnxruntime-node's (Y_h/Y_c fed back) and TF.js's (a stateful layer) stay resident in theirs.
 * - 'wasm-stepBatch', 'js', 'ort': `stepBatch` on a B × stateSize slab with a reused output
 *   buffer, as the engine calls it (states copied in and out of the kernel each step).
 */
export function cellstreamImpl(kernelName) {
  const impl = {
    js: 'cellstream-js',
    wasm: 'cellstream-wasm',
    native: 'cellstream-native',
    'wasm-stepBatch': 'cellstream-wasm-stepBatch',
    ort: 'cellstream-ort',
  }[kernelName];
  return {
    impl,
    available() {
      if (kernelName === 'native') return !(loadNative() instanceof Error);
      return kernelName !== 'ort' || !(loadOrt() instanceof Error);
    },
    async create(model, batch) {
      if (kernelName === 'wasm' || kernelName === 'native') {
        // The native kernel itself, not a selection that would hand a model it does not run to
        // wasm under the native row's name: such a model fails here instead.
        const kernel =
          kernelName === 'native'
            ? createNativeKernel(loadNative())
            : selectKernel({ kernel: 'wasm', ort: 'off' });
        const session = kernel.session(model, batch);
        const slots = Int32Array.from({ length: batch }, (_, i) => i);
        const inputs = [null];
        return {
          step(x) {
            inputs[0] = x;
            return session.stepSlots(slots, inputs, batch);
          },
          reset() {
            for (let b = 0; b < batch; b++) session.writeState(b, []);
          },
          dispose() {},
        };
      }
      const kernel =
        kernelName === 'js'
          ? referenceKernel
          : kernelName === 'ort'
            ? createOrtKernel(loadOrt())
            : selectKernel({ kernel: 'wasm', ort: 'off' });
      const states = new Float32Array(batch * stateSize(model));
      // The output buffer is reused from step to step, as the engine does.
      const out = new Float32Array(batch * outputSize(model));
      return {
        step: (x) => kernel.stepBatch(model, states, [x], batch, out),
        reset: () => states.fill(0),
        dispose() {},
      };
    },
  };
}
