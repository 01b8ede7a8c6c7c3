import * as ort from 'onnxruntime-node';
import { onnxLstmBytes } from '../onnxLstm.mjs';

/**
 * onnxruntime-node on one thread (the design gives the numbers one core), the state carried
 * between `run` calls through initial_h/c and Y_h/Y_c, as a streaming caller must.
 */
export function ortImpl() {
  return {
    impl: 'onnxruntime-node',
    async create(model, batch) {
      const { inputSize: I, hiddenSize: H } = model.branches[0].layers[0];
      const session = await ort.InferenceSession.create(onnxLstmBytes(model), {
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
      let h;
      let c;
      const reset = () => {
        h = new ort.Tensor('float32', new Float32Array(batch * H), [1, batch, H]);
        c = new ort.Tensor('float32', new Float32Array(batch * H), [1, batch, H]);
      };
      reset();
      return {
        async step(x) {
          const r = await session.run({
            X: new ort.Tensor('float32', x, [1, batch, I]),
            initial_h: h,
            initial_c: c,
          });
          h = r.Y_h;
          c = r.Y_c;
          return h.data;
        },
        reset,
        dispose: () => session.release(),
      };
    },
  };
}
