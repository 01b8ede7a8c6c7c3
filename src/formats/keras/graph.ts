import { ModelInvalidError, NotStreamableError, UnsupportedLayerError } from '../../errors.js';
import type { LayerSpec, ModelGraph } from './config.js';

/** The streamable shape of a Keras model: recurrent chains per input, merged into a dense head. */
export interface ModelPlan {
  /** InputLayers, in the model's input order. */
  readonly inputs: readonly LayerSpec[];
  /** One per Concatenate argument (or one for a plain chain), in concatenation order. */
  readonly branches: readonly { readonly input: LayerSpec; readonly layers: readonly LayerSpec[] }[];
  /** Dense layers after the merge, in order. */
  readonly head: readonly LayerSpec[];
}

const RECURRENT = new Set(['LSTM', 'GRU']);
/** Layers that are the identity at inference time. */
const IDENTITY = new Set(['Dropout']);
const SUPPORTED = new Set(['InputLayer', 'Dense', 'Concatenate', ...RECURRENT, ...IDENTITY]);

/**
 * Finds the branches and head of a model graph, refusing any layer that cellstream cannot run one
 * step per event: unknown classes by name, and layers that read the sequence backwards.
 */
export function planModel(graph: ModelGraph): ModelPlan {
  graph.layers.forEach(checkLayer);
  const byName = new Map(graph.layers.map((l) => [l.name, l]));
  const get = (name: string): LayerSpec => {
    const l = byName.get(name);
    if (!l) throw new ModelInvalidError(`model config refers to a layer '${name}' it does not define`);
    return l;
  };
  const only = (l: LayerSpec): LayerSpec => {
    if (l.inbound.length !== 1) {
      throw new ModelInvalidError(`layer '${l.name}' takes ${l.inbound.length} inputs, expected one`);
    }
    return get(l.inbound[0]);
  };

  if (graph.outputs.length !== 1) {
    throw new ModelInvalidError(
      `model '${graph.name}' has ${graph.outputs.length} outputs; cellstream runs models with one output`,
    );
  }
  const head: LayerSpec[] = [];
  let at = get(graph.outputs[0]);
  while (at.className === 'Dense' || IDENTITY.has(at.className)) {
    if (at.className === 'Dense') head.unshift(at);
    at = only(at);
  }
  const tails = at.className === 'Concatenate' ? concatenated(at).map(get) : [at];

  const branches = tails.map((tail) => {
    const layers: LayerSpec[] = [];
    let l = tail;
    while (l.className !== 'InputLayer') {
      if (RECURRENT.has(l.className)) layers.unshift(l);
      else if (!IDENTITY.has(l.className)) {
        throw new UnsupportedLayerError(
          l.className,
          l.name,
          'only LSTM, GRU and Dropout may sit between an input and the merge; the head is Dense layers',
        );
      }
      l = only(l);
    }
    if (layers.length === 0) {
      throw new UnsupportedLayerError(
        l.className,
        l.name,
        'the input reaches the head without a recurrent layer',
      );
    }
    return { input: l, layers };
  });

  const inputs = graph.inputs.map(get);
  for (const input of inputs) {
    const n = branches.filter((b) => b.input === input).length;
    if (n !== 1) {
      throw new UnsupportedLayerError(
        'InputLayer',
        input.name,
        n === 0 ? 'the input feeds no recurrent branch' : 'the input feeds more than one branch',
      );
    }
  }
  return { inputs, branches, head };
}

function checkLayer(l: LayerSpec): void {
  const c = l.config;
  if (l.className === 'Bidirectional') {
    throw new NotStreamableError(l.name, 'a Bidirectional layer reads each sequence from its end too');
  }
  if (!SUPPORTED.has(l.className)) throw new UnsupportedLayerError(l.className, l.name);
  if (isQuantized(c.dtype)) {
    throw new UnsupportedLayerError(l.className, l.name, 'quantized weights (int8/int4/float8 dtype policy)');
  }
  if (l.calls > 1) {
    throw new UnsupportedLayerError(
      l.className,
      l.name,
      `the layer is called ${l.calls} times (shared weights)`,
    );
  }
  if (!RECURRENT.has(l.className)) return;
  if (c.go_backwards === true) {
    throw new NotStreamableError(l.name, 'go_backwards=True reads each sequence from its end');
  }
  if (c.return_state === true) {
    throw new UnsupportedLayerError(
      l.className,
      l.name,
      'return_state=True (the state is not an output here)',
    );
  }
  if (c.time_major === true) throw new UnsupportedLayerError(l.className, l.name, 'time_major=True');
}

/** Keras 3 marks quantized layers in their dtype policy; their variables are not plain float kernels. */
function isQuantized(dtype: unknown): boolean {
  if (!dtype || typeof dtype !== 'object') return false;
  const d = dtype as { class_name?: unknown; config?: { name?: unknown } };
  const name = typeof d.config?.name === 'string' ? d.config.name : '';
  return String(d.class_name).includes('Quantized') || /^(int|float8)/.test(name);
}

function concatenated(l: LayerSpec): readonly string[] {
  const axis = l.config.axis;
  if (axis !== undefined && axis !== -1) {
    throw new UnsupportedLayerError(
      l.className,
      l.name,
      `axis=${String(axis)}; only the feature axis (-1) merges branches`,
    );
  }
  return l.inbound;
}
