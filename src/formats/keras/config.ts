import { ModelFormatError } from '../../errors.js';

/** One layer of a Keras model config, with its graph edges resolved to layer names. */
export interface LayerSpec {
  readonly className: string;
  readonly name: string;
  readonly config: Readonly<Record<string, unknown>>;
  /** Names of the layers whose outputs this layer takes, in argument order. */
  readonly inbound: readonly string[];
  /** How many times the layer is called in the graph; more than once means shared weights. */
  readonly calls: number;
}

/** A Keras model config reduced to a layer graph; the same shape for Sequential and Functional. */
export interface ModelGraph {
  readonly className: 'Sequential' | 'Functional';
  readonly name: string;
  readonly layers: readonly LayerSpec[];
  /** Input layer names, in the model's input order. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

type Json = Record<string, unknown>;

/**
 * Parses a model config as Keras 3 (`config.json`) and Keras 2 (`model_config` attribute) write it.
 * Both versions share the layer list; they differ in how a functional layer names its inputs.
 */
export function parseModelConfig(raw: unknown): ModelGraph {
  const root = asObject(raw, 'model config');
  const className = root.class_name;
  const config = asObject(root.config, 'model config');
  const name = typeof config.name === 'string' ? config.name : 'model';
  const layers = Array.isArray(config.layers) ? config.layers.map((l) => asObject(l, 'layer')) : undefined;
  if (!layers) throw new ModelFormatError('model config has no layer list');
  if (className === 'Sequential') return sequential(name, layers);
  if (className === 'Functional' || className === 'Model') return functional(name, config, layers);
  throw new ModelFormatError(
    `model config is a '${String(className)}', not a Sequential or Functional model`,
  );
}

function sequential(name: string, raw: readonly Json[]): ModelGraph {
  const layers: LayerSpec[] = [];
  let previous: string | undefined;
  if (raw.length > 0 && raw[0].class_name !== 'InputLayer') {
    // Keras 2 may leave the input implicit, declared by the first layer's batch_input_shape.
    const first = layerConfig(raw[0]);
    previous = `${String(first.name ?? name)}_input`;
    layers.push({
      className: 'InputLayer',
      name: previous,
      config: { batch_input_shape: first.batch_input_shape ?? first.batch_shape },
      inbound: [],
      calls: 1,
    });
  }
  for (const l of raw) {
    const config = layerConfig(l);
    const spec = { className: String(l.class_name), name: layerName(l, config), config };
    layers.push({ ...spec, inbound: previous === undefined ? [] : [previous], calls: 1 });
    previous = spec.name;
  }
  const input = layers.find((l) => l.className === 'InputLayer');
  return {
    className: 'Sequential',
    name,
    layers,
    inputs: input ? [input.name] : [],
    outputs: previous === undefined ? [] : [previous],
  };
}

function functional(name: string, config: Json, raw: readonly Json[]): ModelGraph {
  const layers = raw.map((l) => {
    const lc = layerConfig(l);
    const calls = Array.isArray(l.inbound_nodes) ? l.inbound_nodes.length : 0;
    return {
      className: String(l.class_name),
      name: layerName(l, lc),
      config: lc,
      inbound: inboundOf(l),
      calls,
    };
  });
  return {
    className: 'Functional',
    name,
    layers,
    inputs: endpoints(config.input_layers),
    outputs: endpoints(config.output_layers),
  };
}

/**
 * The layer names a functional layer reads from. Keras 3 writes `[{args: [tensor | [tensor…]]}]`
 * with `keras_history: [layer, node, index]`; Keras 2 writes `[[[layer, node, index, kwargs]…]]`.
 * A layer called more than once (shared weights) has several nodes; that is refused by the caller.
 */
function inboundOf(l: Json): string[] {
  const nodes = Array.isArray(l.inbound_nodes) ? l.inbound_nodes : [];
  const names: string[] = [];
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) {
      // Keras 2 entry: [layer name, node index, tensor index, kwargs?]
      if (typeof v[0] === 'string' && typeof v[1] === 'number') names.push(v[0]);
      else v.forEach(visit);
    } else if (v && typeof v === 'object') {
      const o = v as Json;
      if (o.class_name === '__keras_tensor__') {
        const history = (o.config as Json | undefined)?.keras_history;
        if (Array.isArray(history) && typeof history[0] === 'string') names.push(history[0]);
      } else if (Array.isArray(o.args)) {
        o.args.forEach(visit);
      }
    }
  };
  nodes.forEach(visit);
  return names;
}

/** `input_layers` / `output_layers`: `[[name, node, index]…]`, or a single `[name, node, index]`. */
function endpoints(v: unknown): string[] {
  if (!Array.isArray(v)) return [];
  if (typeof v[0] === 'string') return [v[0]];
  return v.filter((e): e is unknown[] => Array.isArray(e)).map((e) => String(e[0]));
}

function layerConfig(l: Json): Json {
  return l.config && typeof l.config === 'object' ? (l.config as Json) : {};
}

function layerName(l: Json, config: Json): string {
  return String(l.name ?? config.name ?? l.class_name);
}

function asObject(v: unknown, what: string): Json {
  if (v && typeof v === 'object' && !Array.isArray(v)) return v as Json;
  throw new ModelFormatError(`${what} is not a JSON object`);
}
