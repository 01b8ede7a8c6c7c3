import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { ModelFormatError, ModelInvalidError } from '../../errors.js';
import type { Model, ModelInput } from '../../model/index.js';
import { validateModel } from '../../model/index.js';
import { readKerasArchive } from './archive.js';
import { type LayerSpec, parseModelConfig } from './config.js';
import { type ModelPlan, planModel } from './graph.js';
import { type H5Reader, withH5 } from './h5.js';
import { denseLayer, gruLayer, lstmLayer } from './layers.js';
import { kerasV3Weights, legacyH5Weights, type WeightLookup } from './weights.js';

/** Which Keras container the bytes are: a Keras 3 `.keras` zip or a legacy whole-model `.h5`. */
export type KerasFileKind = 'keras' | 'h5';

/**
 * Imports a Keras model into the canonical form. `name` becomes the model's name.
 * Refuses layers it cannot stream with UnsupportedLayerError / NotStreamableError naming the layer.
 */
export async function parseKerasModel(bytes: Uint8Array, kind: KerasFileKind, name: string): Promise<Model> {
  if (kind === 'keras') {
    const archive = readKerasArchive(bytes);
    // A .keras file is only written by Keras 3; older 3.x releases may omit metadata.json.
    const version = archive.kerasVersion ?? '3';
    const graph = parseModelConfig(archive.config);
    // Planning first refuses unsupported layers before any weights are read.
    const plan = planModel(graph);
    return withH5(archive.weights, (h5) => build(name, version, 'keras', plan, kerasV3Weights(h5, graph)));
  }
  return withH5(bytes, (h5) => {
    const config = h5.attr('/', 'model_config');
    if (typeof config !== 'string') {
      throw new ModelFormatError(
        '.h5 file has no model_config: it holds weights only. Save the whole model (model.save).',
      );
    }
    const plan = planModel(parseModelConfig(parseJson(config)));
    return build(name, recordedVersion(h5), 'h5', plan, legacyH5Weights(h5));
  });
}

/**
 * Reads a `.keras` or legacy `.h5` Keras model file (the kind is sniffed from its first bytes).
 * The model's name is `name`, else the file name without its extension.
 */
export async function loadKerasModel(path: string, name?: string): Promise<Model> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (cause) {
    throw new ModelFormatError(`cannot read Keras model ${path}`, { cause });
  }
  const kind = sniffKind(bytes);
  if (!kind) throw new ModelFormatError(`${path} is neither a .keras zip nor an HDF5 .h5 file`);
  return parseKerasModel(bytes, kind, name ?? basename(path, extname(path)));
}

/** 'keras' for a zip, 'h5' for HDF5, undefined for anything else. */
export function sniffKind(bytes: Uint8Array): KerasFileKind | undefined {
  const starts = (sig: readonly number[]) => sig.every((b, i) => bytes[i] === b);
  if (starts([0x50, 0x4b, 0x03, 0x04])) return 'keras';
  if (starts([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])) return 'h5';
  return undefined;
}

/** A legacy file without keras_version predates Keras 3, whose files always record it. */
function recordedVersion(h5: H5Reader): string {
  const v = h5.attr('/', 'keras_version') ?? h5.attr('model_weights', 'keras_version');
  return typeof v === 'string' ? v : '2';
}

function build(
  name: string,
  version: string,
  kind: KerasFileKind,
  plan: ModelPlan,
  weights: WeightLookup,
): Model {
  const major = Number.parseInt(version, 10) || 2;
  const branches = plan.branches.map((b) => ({
    input: b.input.name,
    layers: b.layers.map((l) =>
      l.className === 'LSTM' ? lstmLayer(l, weights(l), major) : gruLayer(l, weights(l), major),
    ),
  }));
  const inputs: ModelInput[] = plan.inputs.map((input) => {
    const first = branches.find((b) => b.input === input.name)!.layers[0];
    return { name: input.name, size: first.inputSize };
  });
  const timesteps = Object.fromEntries(
    plan.inputs.flatMap((i) => {
      const t = inputShape(i)?.[1];
      return typeof t === 'number' ? [[i.name, t]] : [];
    }),
  );
  const model: Model = {
    name,
    source: 'keras',
    inputs,
    branches,
    head: plan.head.map((l) => denseLayer(l, weights(l), major)),
    metadata: {
      keras: {
        version,
        file: kind,
        // A fixed time axis (e.g. Input((1, look_back))) means Keras saw windows of that length.
        ...(Object.keys(timesteps).length > 0 ? { timesteps } : {}),
      },
    },
  };
  checkInputWidths(plan.inputs, inputs);
  validateModel(model);
  return model;
}

function inputShape(input: LayerSpec): readonly unknown[] | undefined {
  const s = input.config.batch_shape ?? input.config.batch_input_shape;
  return Array.isArray(s) ? s : undefined;
}

function checkInputWidths(specs: readonly LayerSpec[], inputs: readonly ModelInput[]): void {
  specs.forEach((spec, i) => {
    const declared = inputShape(spec)?.at(-1);
    if (typeof declared === 'number' && declared !== inputs[i].size) {
      throw new ModelInvalidError(
        `input '${spec.name}' declares ${declared} features but its first layer's kernel takes ${inputs[i].size}`,
      );
    }
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new ModelFormatError('.h5 file has an unreadable model_config', { cause });
  }
}
