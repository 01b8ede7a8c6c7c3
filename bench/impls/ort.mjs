import * as ort from 'onnxruntime-node';
import { onnxRnnBytes } from '../onnxRnn.mjs';

/**
 * onnxruntime-node on one thread (the design gives the numbers one core), one LSTM or GRU node
 * per layer, each layer's state carried between `run` calls through its initial h (and c) and
 * Y_h (and Y_c), as a streaming caller must.
 */
export function ortImpl() {
  return {
    impl: 'onnxruntime-node',
    async create(model, batch) {
      const layers = model.branches[0].layers;
      const I = model.inputs[0].size;
      const session = await ort.InferenceSession.create(onnxRnnBytes(model), {
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
      let feeds;
      const reset = () => {
        feeds = {};
        layers.forEach((l, j) => {
          const zeros = () =>
            new ort.Tensor('float32', new Float32Array(batch * l.hiddenSize), [1, batch, l.hiddenSize]);
          feeds[`h${j}`] = zeros();
          if (l.kind === 'lstm') feeds[`c${j}`] = zeros();
        });
      };
      reset();
      const last = layers.length - 1;
      return {
        async step(x) {
          feeds.X = new ort.Tensor('float32', x, [1, batch, I]);
          const r = await session.run(feeds);
          layers.forEach((l, j) => {
            feeds[`h${j}`] = r[`Y_h${j}`];
            if (l.kind === 'lstm') feeds[`c${j}`] = r[`Y_c${j}`];
          });
          return r[`Y_h${last}`].data;
        },
        reset,
        dispose: () => session.release(),
      };
    },
  };
}
