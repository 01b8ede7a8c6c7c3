import { ModelInvalidError } from '../errors.js';
import type { Activation, DenseLayer, HeadActivation, Model, RecurrentLayer } from './types.js';

/**
 * Checks that every tensor has the size its layer says and that the layers chain, so importers'
 * mistakes surface at load time with a message instead of as NaNs on the first event.
 */
export function validateModel(model: Model): void {
  if (model.inputs.length === 0) throw new ModelInvalidError(`model '${model.name}' has no inputs`);
  if (model.branches.length === 0)
    throw new ModelInvalidError(`model '${model.name}' has no recurrent layers`);
  const inputs = new Map(model.inputs.map((i) => [i.name, i.size]));
  const used = new Set<string>();
  let headIn = 0;
  model.branches.forEach((branch, b) => {
    const size = inputs.get(branch.input);
    if (size === undefined) {
      throw new ModelInvalidError(
        `branch ${b} reads input '${branch.input}', which the model does not declare`,
      );
    }
    if (used.has(branch.input))
      throw new ModelInvalidError(`input '${branch.input}' feeds more than one branch`);
    used.add(branch.input);
    if (branch.layers.length === 0) throw new ModelInvalidError(`branch ${b} has no recurrent layers`);
    let width = size;
    branch.layers.forEach((layer, l) => {
      const where = `branch ${b} layer ${l} (${layer.kind})`;
      if (layer.inputSize !== width) {
        throw new ModelInvalidError(`${where} takes ${layer.inputSize} inputs but receives ${width}`);
      }
      checkRecurrent(layer, where);
      width = layer.hiddenSize;
    });
    headIn += width;
  });
  for (const input of model.inputs) {
    if (!used.has(input.name)) throw new ModelInvalidError(`input '${input.name}' feeds no branch`);
  }
  model.head.forEach((layer, d) => {
    const where = `dense layer ${d}`;
    if (layer.inputSize !== headIn) {
      throw new ModelInvalidError(`${where} takes ${layer.inputSize} inputs but receives ${headIn}`);
    }
    checkDense(layer, where);
    headIn = layer.outputSize;
  });
}

function checkRecurrent(layer: RecurrentLayer, where: string): void {
  const { inputSize: I, hiddenSize: H } = layer;
  if (!(Number.isInteger(H) && H > 0))
    throw new ModelInvalidError(`${where}: hidden size ${H} is not positive`);
  const gates = layer.kind === 'lstm' ? 4 : 3;
  expectLength(layer.W, gates * H * I, `${where} W`);
  expectLength(layer.R, gates * H * H, `${where} R`);
  if (layer.kind === 'lstm') {
    expectLength(layer.b, gates * H, `${where} b`);
    if (layer.peephole) {
      expectLength(layer.peephole.i, H, `${where} peephole i`);
      expectLength(layer.peephole.f, H, `${where} peephole f`);
      expectLength(layer.peephole.o, H, `${where} peephole o`);
    }
    for (const a of [layer.activations.f, layer.activations.g, layer.activations.h])
      checkActivation(a, where);
  } else {
    expectLength(layer.bW, gates * H, `${where} bW`);
    expectLength(layer.bR, gates * H, `${where} bR`);
    for (const a of [layer.activations.f, layer.activations.g]) checkActivation(a, where);
  }
  if (layer.clip !== undefined && !(layer.clip > 0)) {
    throw new ModelInvalidError(`${where}: clip must be positive, got ${layer.clip}`);
  }
}

function checkDense(layer: DenseLayer, where: string): void {
  expectLength(layer.W, layer.outputSize * layer.inputSize, `${where} W`);
  expectLength(layer.b, layer.outputSize, `${where} b`);
  checkActivation(layer.activation, where);
}

function checkActivation(a: HeadActivation | Activation, where: string): void {
  for (const v of Object.values(a)) {
    if (typeof v === 'number' && !Number.isFinite(v)) {
      throw new ModelInvalidError(`${where}: activation ${a.kind} has a non-finite parameter`);
    }
  }
}

function expectLength(t: Float32Array, n: number, what: string): void {
  if (!(t instanceof Float32Array)) throw new ModelInvalidError(`${what} is not a Float32Array`);
  if (t.length !== n) throw new ModelInvalidError(`${what} has ${t.length} values, expected ${n}`);
}
