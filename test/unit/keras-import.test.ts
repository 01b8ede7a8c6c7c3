import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unzipSync, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import {
  ModelFormatError,
  ModelInvalidError,
  NotStreamableError,
  UnsupportedLayerError,
} from '../../src/errors.js';
import { parseModelConfig } from '../../src/formats/keras/config.js';
import { loadKerasModel, parseKerasModel, sniffKind } from '../../src/formats/keras/index.js';
import type { GruLayer, LstmLayer, Model } from '../../src/model/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const golden = (name: string, file = 'model.keras') => join(root, 'golden', 'fixtures', name, file);
const bad = (file: string) => join(root, 'fixtures', 'keras-bad', file);
const probe = (file: string) => join(root, 'fixtures', 'keras-probe', file);

// biome-ignore lint/suspicious/noExplicitAny: tests edit Keras's free-form JSON configs in place
type Json = Record<string, any>;

/** A real .keras file with its config.json rewritten, to reach refusals without more binary fixtures. */
function withConfig(path: string, edit: (config: Json) => void): Uint8Array {
  const files = unzipSync(new Uint8Array(readFileSync(path)));
  const config = JSON.parse(new TextDecoder().decode(files['config.json'])) as Json;
  edit(config);
  files['config.json'] = new TextEncoder().encode(JSON.stringify(config));
  return zipSync(files);
}

const layerNamed = (config: Json, name: string): Json =>
  config.config.layers.find((l: Json) => (l.name ?? l.config.name) === name);

function onlyLayer<T extends LstmLayer | GruLayer>(model: Model): T {
  return model.branches[0].layers[0] as T;
}

describe('Keras import: refusals name the layer', () => {
  it('refuses Bidirectional as not streamable, naming the layer', async () => {
    const err = await loadKerasModel(bad('bidirectional.keras')).catch((e) => e);
    expect(err).toBeInstanceOf(NotStreamableError);
    expect(err.message).toContain("'bi_lstm'");
    expect(err.message).toContain('Bidirectional');
  });

  it('refuses Conv1D by class and name', async () => {
    const err = await loadKerasModel(bad('conv1d.keras')).catch((e) => e);
    expect(err).toBeInstanceOf(UnsupportedLayerError);
    expect(err.message).toContain("Conv1D 'conv'");
    expect(err.layerClass).toBe('Conv1D');
    expect(err.layerName).toBe('conv');
  });

  it('refuses go_backwards in a Keras 2 .h5 as not streamable', async () => {
    const err = await loadKerasModel(bad('go-backwards-v2.h5')).catch((e) => e);
    expect(err).toBeInstanceOf(NotStreamableError);
    expect(err.message).toContain("'backwards'");
    expect(err.message).toContain('go_backwards');
  });

  it('refuses an unknown layer class inside a functional branch', async () => {
    const bytes = withConfig(golden('keras-two-branch'), (c) => {
      layerNamed(c, 'purchases_dropout').class_name = 'Lambda';
    });
    const err = await parseKerasModel(bytes, 'keras', 'x').catch((e) => e);
    expect(err).toBeInstanceOf(UnsupportedLayerError);
    expect(err.message).toContain("Lambda 'purchases_dropout'");
  });

  it('refuses an activation Keras has but cellstream does not, naming the layer', async () => {
    const bytes = withConfig(golden('keras-lstm-softmax5'), (c) => {
      layerNamed(c, 'lstm').config.activation = 'selu';
    });
    const err = await parseKerasModel(bytes, 'keras', 'x').catch((e) => e);
    expect(err).toBeInstanceOf(UnsupportedLayerError);
    expect(err.message).toContain("LSTM 'lstm'");
    expect(err.message).toContain('selu');
  });

  it('refuses return_state, which changes what the layer outputs', async () => {
    const bytes = withConfig(golden('keras-lstm-softmax5'), (c) => {
      layerNamed(c, 'lstm').config.return_state = true;
    });
    const err = await parseKerasModel(bytes, 'keras', 'x').catch((e) => e);
    expect(err).toBeInstanceOf(UnsupportedLayerError);
    expect(err.message).toContain("LSTM 'lstm'");
  });

  it('refuses a quantized layer, whose variables are not float kernels', async () => {
    const bytes = withConfig(golden('keras-lstm-softmax5'), (c) => {
      layerNamed(c, 'bins').config.dtype = {
        module: 'keras',
        class_name: 'QuantizedDTypePolicy',
        config: { name: 'int8_from_float32', source_name: 'float32' },
      };
    });
    const err = await parseKerasModel(bytes, 'keras', 'x').catch((e) => e);
    expect(err).toBeInstanceOf(UnsupportedLayerError);
    expect(err.message).toContain("Dense 'bins'");
  });

  it('refuses a Dense layer between an input and a recurrent layer', async () => {
    const bytes = withConfig(golden('keras-lstm-stacked'), (c) => {
      layerNamed(c, 'lstm_a').class_name = 'Dense';
    });
    const err = await parseKerasModel(bytes, 'keras', 'x').catch((e) => e);
    expect(err).toBeInstanceOf(UnsupportedLayerError);
    expect(err.message).toContain("Dense 'lstm_a'");
  });

  it('says what is wrong with files that are not Keras models', async () => {
    await expect(parseKerasModel(new Uint8Array([1, 2, 3]), 'keras', 'x')).rejects.toBeInstanceOf(
      ModelFormatError,
    );
    // A weights-only HDF5 file (here the one inside a .keras zip) has no model_config.
    const weightsOnly = unzipSync(new Uint8Array(readFileSync(golden('keras-lstm-softmax5'))))[
      'model.weights.h5'
    ];
    const err = await parseKerasModel(weightsOnly, 'h5', 'x').catch((e) => e);
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toContain('model_config');
    expect(sniffKind(weightsOnly)).toBe('h5');
    expect(sniffKind(new Uint8Array(readFileSync(golden('keras-lstm-softmax5'))))).toBe('keras');
  });

  it('names a missing file', async () => {
    const err = await loadKerasModel('/nonexistent/m.keras').catch((e) => e);
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toContain('/nonexistent/m.keras');
  });

  it('catches a config that disagrees with its weights', async () => {
    const bytes = withConfig(golden('keras-lstm-softmax5'), (c) => {
      layerNamed(c, 'lstm').config.units = 7;
    });
    await expect(parseKerasModel(bytes, 'keras', 'x')).rejects.toBeInstanceOf(ModelInvalidError);
  });
});

describe('Keras import: hard_sigmoid means what the saving Keras version meant', () => {
  it('Keras 3 (.keras and legacy .h5): clip(x/6 + 0.5)', async () => {
    for (const path of [
      golden('keras-lstm-hard-sigmoid'),
      golden('keras-h5v3-lstm-hard-sigmoid', 'model.h5'),
    ]) {
      const m = await loadKerasModel(path);
      expect(onlyLayer<LstmLayer>(m).activations.f).toEqual({
        kind: 'hard_sigmoid',
        alpha: 1 / 6,
        beta: 0.5,
      });
      expect((m.metadata!.keras as Json).version).toMatch(/^3\./);
    }
  });

  it('Keras 2 (.h5 from tf.keras 2.15): clip(0.2x + 0.5)', async () => {
    const m = await loadKerasModel(golden('keras-h5v2-lstm-hard-sigmoid', 'model.h5'));
    expect(onlyLayer<LstmLayer>(m).activations.f).toEqual({ kind: 'hard_sigmoid', alpha: 0.2, beta: 0.5 });
    expect((m.metadata!.keras as Json).version).toMatch(/^2\./);
  });
});

/*
 * The probe models were saved by Keras with kernel[k, j] = 1000·k + j, recurrent kernel
 * −(1000·k + j), and bias row r = 100·r + j + 0.5 (see make_fixtures.py), so every element says
 * where Keras put it. I = 2 inputs, H = 3 units.
 */
describe('Keras import: layouts (transposed kernels, gate order, biases)', () => {
  const I = 2;
  const H = 3;

  function expectTransposed(W: Float32Array, R: Float32Array, gates: number) {
    expect(W).toHaveLength(gates * H * I);
    expect(R).toHaveLength(gates * H * H);
    for (let j = 0; j < gates * H; j++) {
      // Row j of the canonical matrix is column j of Keras's: same gate, same unit.
      for (let k = 0; k < I; k++) expect(W[j * I + k]).toBe(1000 * k + j);
      for (let k = 0; k < H; k++) expect(R[j * H + k]).toBe(0 - (1000 * k + j));
    }
  }

  it('LSTM: Keras i, f, c, o is the canonical i, f, g, o; one bias', async () => {
    const l = onlyLayer<LstmLayer>(await loadKerasModel(probe('lstm.keras')));
    expect(l.kind).toBe('lstm');
    expectTransposed(l.W, l.R, 4);
    expect(Array.from(l.b)).toEqual(Array.from({ length: 4 * H }, (_, j) => j + 0.5));
    // Keras's `activation` drives both the candidate and the cell output.
    expect(l.activations).toEqual({ f: { kind: 'sigmoid' }, g: { kind: 'tanh' }, h: { kind: 'tanh' } });
  });

  it('GRU reset_after=True: bias row 0 is the input bias, row 1 the recurrent bias', async () => {
    const l = onlyLayer<GruLayer>(await loadKerasModel(probe('gru-reset-after.keras')));
    expect(l.linearBeforeReset).toBe(true);
    expectTransposed(l.W, l.R, 3);
    expect(Array.from(l.bW)).toEqual(Array.from({ length: 3 * H }, (_, j) => j + 0.5));
    expect(Array.from(l.bR)).toEqual(Array.from({ length: 3 * H }, (_, j) => 100 + j + 0.5));
  });

  it('GRU reset_after=False: one input-side bias, no recurrent bias', async () => {
    const l = onlyLayer<GruLayer>(await loadKerasModel(probe('gru-reset-before.keras')));
    expect(l.linearBeforeReset).toBe(false);
    expectTransposed(l.W, l.R, 3);
    expect(Array.from(l.bW)).toEqual(Array.from({ length: 3 * H }, (_, j) => j + 0.5));
    expect(Array.from(l.bR)).toEqual(new Array(3 * H).fill(0));
  });

  it('use_bias=False gives zero biases', async () => {
    const m = await loadKerasModel(golden('keras-lstm-nobias-reset'));
    expect(Array.from(onlyLayer<LstmLayer>(m).b).every((v) => v === 0)).toBe(true);
    expect(Array.from(m.head[0].b).every((v) => v === 0)).toBe(true);
    expect(onlyLayer<LstmLayer>(m).activations.g).toEqual({ kind: 'relu' });
    expect(m.head[0].activation).toEqual({ kind: 'softmax' });
  });
});

describe('Keras import: model structure', () => {
  it('a Sequential model is one branch with its Dropout dropped and a dense head', async () => {
    const m = await loadKerasModel(golden('keras-lstm-regression'));
    expect(m.source).toBe('keras');
    expect(m.name).toBe('model');
    expect(m.inputs).toEqual([{ name: 'input_layer', size: 3 }]);
    expect(m.branches.map((b) => b.layers.map((l) => [l.kind, l.hiddenSize]))).toEqual([[['lstm', 8]]]);
    expect(m.head.map((d) => [d.inputSize, d.outputSize])).toEqual([[8, 1]]);
  });

  it('branches take the Input names in the order the model lists its inputs', async () => {
    // 'visits' was created first but the model was built as Model([purchases, visits], …).
    for (const path of [golden('keras-two-branch'), golden('keras-h5v2-two-branch', 'model.h5')]) {
      const m = await loadKerasModel(path);
      expect(m.inputs).toEqual([
        { name: 'purchases', size: 3 },
        { name: 'visits', size: 2 },
      ]);
      expect(m.branches.map((b) => b.input)).toEqual(['purchases', 'visits']);
      expect(m.head.map((d) => d.activation.kind)).toEqual(['relu', 'sigmoid']);
    }
  });

  it('a Keras 2 Sequential whose first layer declares the input shape names its input as Keras does', async () => {
    const m = await loadKerasModel(probe('implicit-input-v2.h5'));
    expect(m.inputs).toEqual([{ name: 'lstm_input', size: 3 }]);
    // Older Keras 2 configs list no InputLayer at all; the same name is derived.
    const graph = parseModelConfig({
      class_name: 'Sequential',
      config: {
        name: 's',
        layers: [
          { class_name: 'LSTM', config: { name: 'lstm', units: 4, batch_input_shape: [null, null, 3] } },
          { class_name: 'Dense', config: { name: 'out', units: 1 } },
        ],
      },
    });
    expect(graph.inputs).toEqual(['lstm_input']);
    expect(graph.layers.map((l) => [l.className, l.name, l.inbound])).toEqual([
      ['InputLayer', 'lstm_input', []],
      ['LSTM', 'lstm', ['lstm_input']],
      ['Dense', 'out', ['lstm']],
    ]);
  });

  it('stacked recurrent layers of both kinds form one branch (Keras 2 .h5)', async () => {
    const m = await loadKerasModel(golden('keras-h5v2-gru-lstm-stacked', 'model.h5'));
    expect(m.branches[0].layers.map((l) => [l.kind, l.inputSize, l.hiddenSize])).toEqual([
      ['gru', 4, 6],
      ['lstm', 6, 5],
    ]);
  });
});
