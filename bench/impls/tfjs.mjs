import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

/** W [4H, I] (rows by gate) → Keras kernel (I, 4H); gate order i, f, c, o is the same. */
function transpose(m, rows, cols) {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
  return t;
}

/**
 * TF.js layers, as a TF.js user streams: a stateful LSTM layer with a fixed batch, one
 * `predict` of a [B, 1, I] tensor per step, read back with dataSync.
 */
export function tfjsImpl(backend) {
  return {
    impl: `tfjs-${backend}`,
    async create(model, batch) {
      await tf.setBackend(backend);
      await tf.ready();
      const l = model.branches[0].layers[0];
      const { inputSize: I, hiddenSize: H } = l;
      const net = tf.sequential();
      net.add(
        tf.layers.lstm({
          units: H,
          batchInputShape: [batch, 1, I],
          stateful: true,
          activation: 'tanh',
          recurrentActivation: 'sigmoid',
          unitForgetBias: false,
          // Overwritten below; zeros skip TF.js's slow orthogonal initialiser at H=256.
          kernelInitializer: 'zeros',
          recurrentInitializer: 'zeros',
        }),
      );
      net.layers[0].setWeights([
        tf.tensor2d(transpose(l.W, 4 * H, I), [I, 4 * H]),
        tf.tensor2d(transpose(l.R, 4 * H, H), [H, 4 * H]),
        tf.tensor1d(l.b),
      ]);
      return {
        step(x) {
          const y = tf.tidy(() => net.predict(tf.tensor3d(x, [batch, 1, I]), { batchSize: batch }));
          const out = y.dataSync();
          y.dispose();
          return out;
        },
        reset: () => net.resetStates(),
        dispose: () => net.dispose(),
      };
    },
  };
}
