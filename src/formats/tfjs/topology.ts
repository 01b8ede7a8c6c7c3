import { ModelFormatError, ModelInvalidError } from '../../errors.js';

/** One entry of a Sequential model's `config.layers`. */
export interface LayerSpec {
  readonly className: string;
  readonly name: string;
  readonly config: Readonly<Record<string, unknown>>;
}

/** What the importer needs from a `modelTopology`. */
export interface SequentialTopology {
  readonly name: string | undefined;
  readonly kerasVersion: string | undefined;
  readonly layers: readonly LayerSpec[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function layerSpec(raw: unknown, index: number): LayerSpec {
  if (!isRecord(raw) || typeof raw['class_name'] !== 'string') {
    throw new ModelInvalidError(`layer #${index} has no class_name`);
  }
  const config = isRecord(raw['config']) ? raw['config'] : {};
  const name = typeof config['name'] === 'string' ? config['name'] : `${raw['class_name']}#${index}`;
  return { className: raw['class_name'], name, config };
}

/**
 * Reads the Sequential model out of a layers `modelTopology`, in either form it comes in:
 * tfjs-layers writes `{class_name: 'Sequential', config: {...}}` at the top, the Keras-to-TF.js
 * converter nests that under `model_config`. Keras < 2.2.3 wrote `config` as the bare layer list.
 */
export function readTopology(topology: unknown): SequentialTopology {
  if (!isRecord(topology)) throw new ModelInvalidError('model.json has no modelTopology object');
  if (Array.isArray(topology['node'])) {
    throw new ModelFormatError(
      'model.json holds a TF.js graph model (a GraphDef), not a layers model; ' +
        'convert the Keras model with --output_format=tfjs_layers_model',
    );
  }
  const kerasVersion = typeof topology['keras_version'] === 'string' ? topology['keras_version'] : undefined;
  const model = isRecord(topology['model_config']) ? topology['model_config'] : topology;
  const className = model['class_name'];
  if (className !== 'Sequential') {
    throw new ModelFormatError(
      `TF.js layers model of class ${JSON.stringify(className)}: cellstream imports Sequential models only`,
    );
  }
  const config = model['config'];
  let rawLayers: unknown;
  let name: string | undefined;
  if (Array.isArray(config)) {
    rawLayers = config;
  } else if (isRecord(config)) {
    rawLayers = config['layers'];
    name = typeof config['name'] === 'string' ? config['name'] : undefined;
  }
  if (!Array.isArray(rawLayers)) throw new ModelInvalidError('Sequential model config has no layers list');
  return { name, kerasVersion, layers: rawLayers.map(layerSpec) };
}
