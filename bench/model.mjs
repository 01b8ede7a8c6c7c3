// The benchmark's network: by default one LSTM layer, I inputs, H units, output = h (no head), the
// shape of issue 7 (I=16, H=64 is ~41k FLOPs a step); GRU and stacked layers for the kernel grid. Weights at Glorot-like scale, fixed by a seed, so
// every implementation runs the same numbers.
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomArray(n, rnd, scale) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rnd() * 2 - 1) * scale;
  return a;
}

function lstmLayer(I, H, rnd) {
  return {
    kind: 'lstm',
    inputSize: I,
    hiddenSize: H,
    W: randomArray(4 * H * I, rnd, Math.sqrt(6 / (I + 4 * H))),
    R: randomArray(4 * H * H, rnd, Math.sqrt(6 / (H + 4 * H))),
    b: randomArray(4 * H, rnd, 0.1),
    inputForget: false,
    activations: { f: { kind: 'sigmoid' }, g: { kind: 'tanh' }, h: { kind: 'tanh' } },
  };
}

/**
 * A GRU as PyTorch and Keras (reset_after=True) export it: the reset after the recurrent product;
 * with `resetBefore`, as Keras reset_after=False and ONNX's default: the reset on h before it.
 */
function gruLayer(I, H, rnd, resetBefore = false) {
  return {
    kind: 'gru',
    inputSize: I,
    hiddenSize: H,
    W: randomArray(3 * H * I, rnd, Math.sqrt(6 / (I + 3 * H))),
    R: randomArray(3 * H * H, rnd, Math.sqrt(6 / (H + 3 * H))),
    bW: randomArray(3 * H, rnd, 0.1),
    bR: randomArray(3 * H, rnd, 0.1),
    linearBeforeReset: !resetBefore,
    activations: { f: { kind: 'sigmoid' }, g: { kind: 'tanh' } },
  };
}

/**
 * The canonical cellstream model (LSTM gates i, f, g, o; W [4H, I], R [4H, H], summed bias; GRU
 * gates z, r, n; kind 'gru-before': the reset before the product), `layers` stacked layers of H
 * units, output = the last h.
 */
export function benchModel(I, H, seed = 7, { kind = 'lstm', layers = 1 } = {}) {
  const rnd = prng(seed);
  const make =
    kind === 'gru' ? gruLayer : kind === 'gru-before' ? (i, h, r) => gruLayer(i, h, r, true) : lstmLayer;
  return {
    name: kind === 'lstm' && layers === 1 ? `bench-lstm-${H}` : `bench-${kind}-${layers}x${H}`,
    source: 'bench',
    inputs: [{ name: 'x', size: I }],
    branches: [
      { input: 'x', layers: Array.from({ length: layers }, (_, j) => make(j === 0 ? I : H, H, rnd)) },
    ],
    head: [],
  };
}

/** `model` with a dense sigmoid head of `O` outputs on its last h. */
export function withHead(model, O, seed = 13) {
  const H = model.branches[0].layers.at(-1).hiddenSize;
  const rnd = prng(seed);
  const dense = {
    kind: 'dense',
    inputSize: H,
    outputSize: O,
    W: randomArray(O * H, rnd, Math.sqrt(6 / (H + O))),
    b: randomArray(O, rnd, 0.1),
    activation: { kind: 'sigmoid' },
  };
  return { ...model, name: `${model.name}-head${O}`, head: [dense] };
}

/** A fixed stream of input batches (B × I each), cycled through by the timed loops. */
export function inputStream(I, batch, count = 64, seed = 11) {
  const rnd = prng(seed);
  return Array.from({ length: count }, () => randomArray(batch * I, rnd, 1));
}
