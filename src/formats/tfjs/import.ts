import { ModelInvalidError, NotStreamableError, UnsupportedLayerError } from '../../errors.js';
import type {
  Activation,
  DenseLayer,
  GruLayer,
  HeadActivation,
  LstmLayer,
  Model,
  RecurrentLayer,
} from '../../model/types.js';
import { validateModel } from '../../model/validate.js';
import {
  elementwiseActivation,
  type HardSigmoidFlavour,
  hardSigmoidFlavour,
  headActivation,
} from './activations.js';
import { type LayerSpec, readTopology } from './topology.js';
import { decodeWeights, type NamedWeight, weightSpecs } from './weights.js';

/** Layers that are the identity at inference time. */
const INFERENCE_IDENTITY = new Set([
  'Dropout',
  'SpatialDropout1D',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
]);

interface Context {
  readonly weights: ReadonlyMap<string, NamedWeight>;
  readonly flavour: HardSigmoidFlavour;
  readonly kerasVersion: string | undefined;
}

/**
 * Finds a layer's weight by its role (`kernel`, `recurrent_kernel`, `bias`).
 * tfjs-layers names weights `<layer>/<role>`; the Keras converter writes longer paths such as
 * `<layer>/lstm_cell/<role>` or `<model>/<layer>/<cell>/<role>:0`, so the layer name may be any
 * inner path segment.
 */
function findWeight(ctx: Context, layer: LayerSpec, role: string): NamedWeight | undefined {
  const found: NamedWeight[] = [];
  for (const w of ctx.weights.values()) {
    const segments = w.name.replace(/:\d+$/, '').split('/');
    if (segments.at(-1) === role && segments.slice(0, -1).includes(layer.name)) found.push(w);
  }
  if (found.length > 1) {
    throw new ModelInvalidError(
      `layer '${layer.name}': several weights could be its ${role}: ${found.map((w) => w.name).join(', ')}`,
    );
  }
  return found[0];
}

function requireWeight(ctx: Context, layer: LayerSpec, role: string, shape: readonly number[]): NamedWeight {
  const w = findWeight(ctx, layer, role);
  if (!w) {
    throw new ModelInvalidError(
      `layer ${layer.className} '${layer.name}' has no '${role}' weight in the manifest ` +
        `(weights present: ${[...ctx.weights.keys()].join(', ') || 'none'})`,
    );
  }
  checkShape(layer, w, shape);
  return w;
}

function checkShape(layer: LayerSpec, w: NamedWeight, shape: readonly number[]): void {
  if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i])) {
    throw new ModelInvalidError(
      `layer '${layer.name}': weight '${w.name}' has shape [${w.shape.join(', ')}], expected [${shape.join(', ')}]`,
    );
  }
}

/** Keras kernels are `(in, out)`; the canonical model stores `[out, in]`. */
function transpose(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  }
  return out;
}

function positiveInt(layer: LayerSpec, key: string): number {
  const v = layer.config[key];
  if (!Number.isInteger(v) || (v as number) <= 0) {
    throw new ModelInvalidError(
      `layer '${layer.name}': '${key}' must be a positive integer, got ${JSON.stringify(v)}`,
    );
  }
  return v as number;
}

function activationOf(ctx: Context, layer: LayerSpec, key: string, fallback: Activation): Activation {
  // A key present with null means linear in Keras (activations.get(None)); absent means the default.
  if (!(key in layer.config)) return fallback;
  const act = elementwiseActivation(layer.config[key], ctx.flavour);
  if (!act) {
    throw new UnsupportedLayerError(
      layer.className,
      layer.name,
      `${key} ${JSON.stringify(layer.config[key])} is not supported (linear, sigmoid, hard_sigmoid, tanh, relu, elu, softsign, softplus are)`,
    );
  }
  return act;
}

/**
 * The recurrent activation a layer gets when its config omits it: TF.js always defaults to
 * hard_sigmoid, Keras did until 2.3 and uses sigmoid since.
 */
function defaultRecurrentActivation(ctx: Context): Activation {
  const m = /^(\d+)\.(\d+)/.exec(ctx.kerasVersion ?? '');
  const isModernKeras = m !== null && (Number(m[1]) > 2 || (Number(m[1]) === 2 && Number(m[2]) >= 3));
  if (isModernKeras) return { kind: 'sigmoid' };
  return elementwiseActivation('hard_sigmoid', ctx.flavour)!;
}

function checkStreamable(layer: LayerSpec): void {
  if (layer.config['go_backwards'] === true) {
    throw new NotStreamableError(
      layer.name,
      `${layer.className} has go_backwards=true, so it reads the sequence from its end`,
    );
  }
}

function importLstm(ctx: Context, layer: LayerSpec, inputSize: number): LstmLayer {
  checkStreamable(layer);
  const H = positiveInt(layer, 'units');
  const kernel = requireWeight(ctx, layer, 'kernel', [inputSize, 4 * H]);
  const recurrent = requireWeight(ctx, layer, 'recurrent_kernel', [H, 4 * H]);
  const useBias = layer.config['use_bias'] !== false;
  // Keras/TF.js gates i, f, c, o are the canonical i, f, g, o in the same order: only transpose.
  const b = useBias ? requireWeight(ctx, layer, 'bias', [4 * H]).values.slice() : new Float32Array(4 * H);
  const activation = activationOf(ctx, layer, 'activation', { kind: 'tanh' });
  return {
    kind: 'lstm',
    inputSize,
    hiddenSize: H,
    W: transpose(kernel.values, inputSize, 4 * H),
    R: transpose(recurrent.values, H, 4 * H),
    b,
    inputForget: false,
    activations: {
      f: activationOf(ctx, layer, 'recurrent_activation', defaultRecurrentActivation(ctx)),
      g: activation,
      h: activation,
    },
  };
}

function importGru(ctx: Context, layer: LayerSpec, inputSize: number): GruLayer {
  checkStreamable(layer);
  const H = positiveInt(layer, 'units');
  const kernel = requireWeight(ctx, layer, 'kernel', [inputSize, 3 * H]);
  const recurrent = requireWeight(ctx, layer, 'recurrent_kernel', [H, 3 * H]);
  const useBias = layer.config['use_bias'] !== false;
  const bias = useBias ? findWeight(ctx, layer, 'bias') : undefined;
  if (useBias && !bias) requireWeight(ctx, layer, 'bias', [3 * H]);

  // reset_after=False (the only mode tfjs-layers runs) has one bias [3H], added on the input side
  // only. reset_after=True (Keras's default since 2.3) has [2, 3H]: input bias, then recurrent.
  const declared = layer.config['reset_after'];
  let resetAfter: boolean;
  if (typeof declared === 'boolean') resetAfter = declared;
  else resetAfter = bias !== undefined && bias.shape.length === 2;
  let bW = new Float32Array(3 * H);
  let bR = new Float32Array(3 * H);
  if (bias) {
    if (resetAfter) {
      checkShape(layer, bias, [2, 3 * H]);
      bW = bias.values.slice(0, 3 * H);
      bR = bias.values.slice(3 * H);
    } else {
      checkShape(layer, bias, [3 * H]);
      bW = bias.values.slice();
    }
  }
  return {
    kind: 'gru',
    inputSize,
    hiddenSize: H,
    W: transpose(kernel.values, inputSize, 3 * H),
    R: transpose(recurrent.values, H, 3 * H),
    bW,
    bR,
    linearBeforeReset: resetAfter,
    activations: {
      f: activationOf(ctx, layer, 'recurrent_activation', defaultRecurrentActivation(ctx)),
      g: activationOf(ctx, layer, 'activation', { kind: 'tanh' }),
    },
  };
}

function importDense(ctx: Context, layer: LayerSpec, inputSize: number): DenseLayer {
  const units = positiveInt(layer, 'units');
  const kernel = requireWeight(ctx, layer, 'kernel', [inputSize, units]);
  const b =
    layer.config['use_bias'] !== false
      ? requireWeight(ctx, layer, 'bias', [units]).values.slice()
      : new Float32Array(units);
  let activation: HeadActivation | undefined = { kind: 'linear' };
  if ('activation' in layer.config) activation = headActivation(layer.config['activation'], ctx.flavour);
  if (!activation) {
    throw new UnsupportedLayerError(
      layer.className,
      layer.name,
      `activation ${JSON.stringify(layer.config['activation'])} is not supported (linear, relu, sigmoid, tanh, softmax, hard_sigmoid, elu, softsign, softplus are)`,
    );
  }
  return {
    kind: 'dense',
    inputSize,
    outputSize: units,
    W: transpose(kernel.values, inputSize, units),
    b,
    activation,
  };
}

/** The declared input width of the first layer, if its config records one. */
function declaredInputSize(layer: LayerSpec): number | undefined {
  const shape = layer.config['batch_input_shape'] ?? layer.config['batch_shape'];
  if (!Array.isArray(shape)) return undefined;
  if (shape.length !== 3) {
    throw new ModelInvalidError(
      `layer '${layer.name}': input shape ${JSON.stringify(shape)} is not [batch, time, features]`,
    );
  }
  const last = shape[2];
  if (!Number.isInteger(last) || last <= 0) {
    throw new ModelInvalidError(
      `layer '${layer.name}': input feature size ${JSON.stringify(last)} is not known`,
    );
  }
  return last as number;
}

/** Width of the first recurrent layer's kernel: the input size when no layer declares it. */
function kernelInputSize(ctx: Context, layer: LayerSpec): number {
  const kernel = findWeight(ctx, layer, 'kernel');
  if (kernel?.shape.length !== 2) {
    throw new ModelInvalidError(
      `layer '${layer.name}': cannot tell the input size (no input shape, no kernel)`,
    );
  }
  return kernel.shape[0];
}

/**
 * Converts a TF.js layers model — its model.json (parsed) and the concatenation of its weight
 * shards in manifest order — into the canonical model. Accepts Sequential models of LSTM and GRU
 * layers followed by Dense layers, with InputLayer and Dropout-like layers anywhere.
 * Throws `UnsupportedLayerError`, `NotStreamableError`, `ModelInvalidError` or `ModelFormatError`.
 */
export function importTfjsLayers(modelJson: unknown, weightData: Uint8Array, name: string): Model {
  if (typeof modelJson !== 'object' || modelJson === null || Array.isArray(modelJson)) {
    throw new ModelInvalidError('model.json is not a JSON object');
  }
  const json = modelJson as Record<string, unknown>;
  const topology = readTopology(json['modelTopology']);
  const ctx: Context = {
    weights: decodeWeights(weightSpecs(json), weightData),
    flavour: hardSigmoidFlavour(topology.kerasVersion),
    kerasVersion: topology.kerasVersion,
  };

  let inputName: string | undefined;
  let inputSize = 0;
  let width: number | undefined;
  const recurrent: RecurrentLayer[] = [];
  const head: DenseLayer[] = [];
  let lastReturnsSequences = true;
  let lastDenseName = '';

  for (const [index, layer] of topology.layers.entries()) {
    if (index === 0) {
      // Sequential names its implicit input after the first layer (tfjs-layers and Keras alike).
      inputName = layer.className === 'InputLayer' ? layer.name : `${layer.name}_input`;
    }
    switch (layer.className) {
      case 'InputLayer':
        if (index !== 0) throw new ModelInvalidError(`InputLayer '${layer.name}' is not the first layer`);
        continue;
      case 'LSTM':
      case 'GRU': {
        if (head.length > 0) {
          throw new UnsupportedLayerError(
            layer.className,
            layer.name,
            `it follows Dense layer '${lastDenseName}'; dense layers are supported only after the last recurrent layer`,
          );
        }
        if (!lastReturnsSequences) {
          throw new ModelInvalidError(
            `recurrent layer '${layer.name}' follows a recurrent layer with return_sequences=false`,
          );
        }
        if (width === undefined) {
          // Read only now, so that an unsupported first layer (an Embedding's 2-D input, say)
          // is reported as such rather than as an odd input shape.
          inputSize = declaredInputSize(topology.layers[0]) ?? kernelInputSize(ctx, layer);
          width = inputSize;
        }
        const imported =
          layer.className === 'LSTM' ? importLstm(ctx, layer, width) : importGru(ctx, layer, width);
        recurrent.push(imported);
        width = imported.hiddenSize;
        lastReturnsSequences = layer.config['return_sequences'] === true;
        continue;
      }
      case 'Dense':
        if (recurrent.length === 0) {
          throw new UnsupportedLayerError(
            'Dense',
            layer.name,
            'dense layers before the first recurrent layer are not supported',
          );
        }
        head.push(importDense(ctx, layer, width!));
        lastDenseName = layer.name;
        width = head.at(-1)!.outputSize;
        continue;
      case 'Bidirectional':
        throw new NotStreamableError(
          layer.name,
          'Bidirectional also runs the sequence backwards from its end',
        );
      default:
        if (INFERENCE_IDENTITY.has(layer.className)) continue;
        throw new UnsupportedLayerError(
          layer.className,
          layer.name,
          'supported layers are InputLayer, LSTM, GRU, Dense and Dropout',
        );
    }
  }
  if (recurrent.length === 0) throw new ModelInvalidError('the model has no LSTM or GRU layer');
  const model: Model = {
    name: name || topology.name || 'tfjs-model',
    source: 'tfjs',
    inputs: [{ name: inputName!, size: inputSize }],
    branches: [{ input: inputName!, layers: recurrent }],
    head,
  };
  validateModel(model);
  return model;
}
