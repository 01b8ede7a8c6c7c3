import { ModelInvalidError } from '../../errors.js';
import type { LayerSpec, ModelGraph } from './config.js';
import type { H5Reader, Tensor } from './h5.js';

/** A layer's weights under Keras's own names. */
export interface LayerWeights {
  readonly kernel: Tensor;
  readonly recurrentKernel?: Tensor;
  readonly bias?: Tensor;
}

/** Looks up a layer's weights in a weights file, whatever its layout. */
export type WeightLookup = (layer: LayerSpec) => LayerWeights;

/**
 * Keras 3 `model.weights.h5`: `layers/<key>/vars/<i>` (recurrent layers: `layers/<key>/cell/vars/<i>`),
 * variables in creation order (kernel, recurrent kernel, bias). Keras keys a layer not by its name
 * but by its snake-cased class plus a counter, in the order of `model.layers` (which for Sequential
 * leaves out the InputLayer); that is how Keras itself finds the weights when it loads.
 */
export function kerasV3Weights(h5: H5Reader, graph: ModelGraph): WeightLookup {
  const keys = new Map<string, string>();
  const used = new Map<string, number>();
  for (const l of graph.layers) {
    if (graph.className === 'Sequential' && l.className === 'InputLayer') continue;
    const base = snakeCase(l.className);
    const n = used.get(base);
    used.set(base, n === undefined ? 0 : n + 1);
    keys.set(l.name, n === undefined ? base : `${base}_${n + 1}`);
  }
  return (layer) => {
    const key = keys.get(layer.name);
    const cell = layer.className === 'LSTM' || layer.className === 'GRU';
    const vars = `layers/${key}/${cell ? 'cell/' : ''}vars`;
    if (key === undefined || !h5.has(vars)) {
      throw new ModelInvalidError(
        `weights file has no variables for layer '${layer.name}' (looked in ${vars})`,
      );
    }
    // Recent Keras also records the layer's name beside its variables; a mismatch means a wrong key.
    const recorded = h5.attr(`layers/${key}/vars`, 'name');
    if (typeof recorded === 'string' && recorded !== layer.name) {
      throw new ModelInvalidError(`weights at layers/${key} belong to '${recorded}', not to '${layer.name}'`);
    }
    const tensors = h5
      .keys(vars)
      .sort((a, b) => Number(a) - Number(b))
      .map((i) => h5.tensor(`${vars}/${i}`));
    const [kernel, ...rest] = tensors;
    if (!kernel) throw new ModelInvalidError(`layer '${layer.name}' has no kernel in the weights file`);
    return cell ? { kernel, recurrentKernel: rest[0], bias: rest[1] } : { kernel, bias: rest[0] };
  };
}

/**
 * Legacy `.h5` (Keras 2, and Keras 3's `save('x.h5')`): `model_weights/<layer name>` carries a
 * `weight_names` attribute listing its datasets, e.g. `lstm/lstm_cell/kernel:0`.
 */
export function legacyH5Weights(h5: H5Reader): WeightLookup {
  return (layer) => {
    const group = `model_weights/${layer.name}`;
    const names = h5.attr(group, 'weight_names');
    const byRole = new Map<string, Tensor>();
    if (Array.isArray(names)) {
      for (const n of names) {
        if (typeof n !== 'string') continue;
        const role = (n.split('/').pop() ?? n).replace(/:\d+$/, '');
        byRole.set(role, h5.tensor(`${group}/${n}`));
      }
    }
    const kernel = byRole.get('kernel');
    if (!kernel)
      throw new ModelInvalidError(`weights file has no kernel for layer '${layer.name}' in ${group}`);
    return { kernel, recurrentKernel: byRole.get('recurrent_kernel'), bias: byRole.get('bias') };
  };
}

/** Keras's `naming.to_snake_case`, which names the weight groups of a `.keras` file. */
export function snakeCase(name: string): string {
  return name
    .replace(/\W+/g, '')
    .replace(/(.)([A-Z][a-z]+)/g, '$1_$2')
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toLowerCase();
}
