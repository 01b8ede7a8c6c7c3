import type { Model } from './types.js';

/** Every weight tensor of a model with a stable name, in a fixed order. */
export function* tensors(model: Model): Generator<[string, Float32Array]> {
  for (const [b, branch] of model.branches.entries()) {
    for (const [l, layer] of branch.layers.entries()) {
      const p = `branch${b}.layer${l}`;
      yield [`${p}.W`, layer.W];
      yield [`${p}.R`, layer.R];
      if (layer.kind === 'lstm') {
        yield [`${p}.b`, layer.b];
        if (layer.peephole) {
          yield [`${p}.peephole.i`, layer.peephole.i];
          yield [`${p}.peephole.f`, layer.peephole.f];
          yield [`${p}.peephole.o`, layer.peephole.o];
        }
      } else {
        yield [`${p}.bW`, layer.bW];
        yield [`${p}.bR`, layer.bR];
      }
    }
  }
  for (const [d, dense] of model.head.entries()) {
    yield [`head${d}.W`, dense.W];
    yield [`head${d}.b`, dense.b];
  }
}

/** The model with its weight tensors left out: what defines the computation besides the numbers. */
export function structure(model: Model): unknown {
  return {
    inputs: model.inputs,
    branches: model.branches.map((br) => ({
      input: br.input,
      layers: br.layers.map((l) =>
        l.kind === 'lstm'
          ? {
              kind: l.kind,
              inputSize: l.inputSize,
              hiddenSize: l.hiddenSize,
              peephole: l.peephole !== undefined,
              inputForget: l.inputForget,
              clip: l.clip ?? null,
              activations: l.activations,
            }
          : {
              kind: l.kind,
              inputSize: l.inputSize,
              hiddenSize: l.hiddenSize,
              linearBeforeReset: l.linearBeforeReset,
              clip: l.clip ?? null,
              activations: l.activations,
            },
      ),
    })),
    head: model.head.map((d) => ({
      kind: d.kind,
      inputSize: d.inputSize,
      outputSize: d.outputSize,
      activation: d.activation,
    })),
  };
}
