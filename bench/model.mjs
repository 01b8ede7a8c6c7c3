// The benchmark's network: one LSTM layer, I inputs, H units, output = h (no head), the shape of
// issue 7 (I=16, H=64 is ~41k FLOPs a step). Weights at Glorot-like scale, fixed by a seed, so
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

/** The canonical cellstream model (gates i, f, g, o; W [4H, I], R [4H, H], summed bias). */
export function benchModel(I, H, seed = 7) {
  const rnd = prng(seed);
  return {
    name: `bench-lstm-${H}`,
    source: 'bench',
    inputs: [{ name: 'x', size: I }],
    branches: [
      {
        input: 'x',
        layers: [
          {
            kind: 'lstm',
            inputSize: I,
            hiddenSize: H,
            W: randomArray(4 * H * I, rnd, Math.sqrt(6 / (I + 4 * H))),
            R: randomArray(4 * H * H, rnd, Math.sqrt(6 / (H + 4 * H))),
            b: randomArray(4 * H, rnd, 0.1),
            inputForget: false,
            activations: { f: { kind: 'sigmoid' }, g: { kind: 'tanh' }, h: { kind: 'tanh' } },
          },
        ],
      },
    ],
    head: [],
  };
}

/** A fixed stream of input batches (B × I each), cycled through by the timed loops. */
export function inputStream(I, batch, count = 64, seed = 11) {
  const rnd = prng(seed);
  return Array.from({ length: count }, () => randomArray(batch * I, rnd, 1));
}
