import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ModelFormatError,
  ModelInvalidError,
  NotStreamableError,
  UnsupportedLayerError,
} from '../../src/errors.js';
import { importTfjsLayers, loadTfjsModel } from '../../src/formats/tfjs/index.js';
import type { DenseLayer, GruLayer, LstmLayer } from '../../src/model/types.js';

const BAD = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/tfjs-bad');

interface W {
  name: string;
  shape: number[];
  values?: number[];
  dtype?: string;
  quantization?: unknown;
}

/** 0, 1, 2, … so that where each value lands after the transpose can be read off. */
function iota(n: number, start = 0): number[] {
  return Array.from({ length: n }, (_, i) => start + i);
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A model.json object and its weight bytes, laid out as tfjs-layers writes them. */
function artifacts(
  layers: unknown[],
  weights: W[],
  topology: Record<string, unknown> = {},
): { json: Record<string, unknown>; data: Uint8Array } {
  const values = weights.flatMap((w) => w.values ?? iota(size(w.shape)));
  const json = {
    modelTopology: {
      class_name: 'Sequential',
      config: { name: 'seq', layers },
      keras_version: 'tfjs-layers 4.22.0',
      backend: 'tensor_flow.js',
      ...topology,
    },
    format: 'layers-model',
    weightsManifest: [
      {
        paths: ['weights.bin'],
        weights: weights.map(({ name, shape, dtype, quantization }) => ({
          name,
          shape,
          dtype: dtype ?? 'float32',
          ...(quantization ? { quantization } : {}),
        })),
      },
    ],
  };
  return { json, data: new Uint8Array(Float32Array.from(values).buffer) };
}

function lstm(name: string, units: number, extra: Record<string, unknown> = {}) {
  return { class_name: 'LSTM', config: { name, units, ...extra } };
}

function gru(name: string, units: number, extra: Record<string, unknown> = {}) {
  return { class_name: 'GRU', config: { name, units, ...extra } };
}

function dense(name: string, units: number, extra: Record<string, unknown> = {}) {
  return { class_name: 'Dense', config: { name, units, ...extra } };
}

const INPUT = { batch_input_shape: [null, null, 2] };

/** An LSTM (I=2, H=1) + Dense(1) model whose every weight is distinct. */
function smallLstm(lstmExtra: Record<string, unknown> = {}, topology: Record<string, unknown> = {}) {
  return artifacts(
    [lstm('lstm_LSTM1', 1, { ...INPUT, ...lstmExtra }), dense('dense_Dense1', 1)],
    [
      { name: 'lstm_LSTM1/kernel', shape: [2, 4] },
      { name: 'lstm_LSTM1/recurrent_kernel', shape: [1, 4], values: iota(4, 100) },
      { name: 'lstm_LSTM1/bias', shape: [4], values: iota(4, 200) },
      { name: 'dense_Dense1/kernel', shape: [1, 1], values: [7] },
      { name: 'dense_Dense1/bias', shape: [1], values: [8] },
    ],
    topology,
  );
}

function firstLstm(json: unknown, data: Uint8Array): LstmLayer {
  return importTfjsLayers(json, data, 'm').branches[0].layers[0] as LstmLayer;
}

function firstGru(json: unknown, data: Uint8Array): GruLayer {
  return importTfjsLayers(json, data, 'm').branches[0].layers[0] as GruLayer;
}

function refusal(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a refusal');
}

async function refusalOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a refusal');
}

describe('TF.js importer: refusals of models tfjs saved', () => {
  it('refuses a Bidirectional wrapper as not streamable, naming the layer', async () => {
    const e = await refusalOf(loadTfjsModel(path.join(BAD, 'bidirectional/model.json')));
    expect(e).toBeInstanceOf(NotStreamableError);
    expect(e.message).toContain("'bidi'");
    expect(e.message).toMatch(/Bidirectional/);
  });

  it('refuses go_backwards as not streamable, naming the layer', async () => {
    const e = await refusalOf(loadTfjsModel(path.join(BAD, 'go-backwards/model.json')));
    expect(e).toBeInstanceOf(NotStreamableError);
    expect(e.message).toContain("'backwards_lstm'");
    expect(e.message).toMatch(/go_backwards/);
  });

  it('refuses Conv1D naming class and layer', async () => {
    const e = await refusalOf(loadTfjsModel(path.join(BAD, 'conv1d/model.json')));
    expect(e).toBeInstanceOf(UnsupportedLayerError);
    expect(e.message).toContain("Conv1D 'conv'");
  });

  it('refuses Embedding naming class and layer', async () => {
    const e = await refusalOf(loadTfjsModel(path.join(BAD, 'embedding/model.json')));
    expect(e).toBeInstanceOf(UnsupportedLayerError);
    expect(e.message).toContain("Embedding 'embed'");
  });

  it('refuses TimeDistributed, a Dense before the recurrent layers, and a recurrent layer after Dense', () => {
    const td = artifacts(
      [lstm('l', 1, INPUT), { class_name: 'TimeDistributed', config: { name: 'td', layer: {} } }],
      [
        { name: 'l/kernel', shape: [2, 4] },
        { name: 'l/recurrent_kernel', shape: [1, 4] },
        { name: 'l/bias', shape: [4] },
      ],
    );
    expect(refusal(() => importTfjsLayers(td.json, td.data, 'm')).message).toContain("TimeDistributed 'td'");

    const before = artifacts([dense('d0', 2, INPUT), lstm('l', 1)], []);
    const e1 = refusal(() => importTfjsLayers(before.json, before.data, 'm'));
    expect(e1).toBeInstanceOf(UnsupportedLayerError);
    expect(e1.message).toContain("Dense 'd0'");

    const after = artifacts(
      [lstm('l', 1, { ...INPUT, return_sequences: true }), dense('d', 1), lstm('l2', 1)],
      [
        { name: 'l/kernel', shape: [2, 4] },
        { name: 'l/recurrent_kernel', shape: [1, 4] },
        { name: 'l/bias', shape: [4] },
        { name: 'd/kernel', shape: [1, 1] },
        { name: 'd/bias', shape: [1] },
      ],
    );
    const e2 = refusal(() => importTfjsLayers(after.json, after.data, 'm'));
    expect(e2).toBeInstanceOf(UnsupportedLayerError);
    expect(e2.message).toContain("LSTM 'l2'");
  });

  it('refuses a functional model and a graph model as formats it does not read', () => {
    const { json, data } = smallLstm();
    (json.modelTopology as Record<string, unknown>).class_name = 'Functional';
    expect(refusal(() => importTfjsLayers(json, data, 'm'))).toBeInstanceOf(ModelFormatError);
    const graph = { modelTopology: { node: [] }, format: 'graph-model', weightsManifest: [] };
    expect(refusal(() => importTfjsLayers(graph, new Uint8Array(0), 'm'))).toBeInstanceOf(ModelFormatError);
  });

  it('refuses a recurrent layer fed by one that does not return sequences', () => {
    const { json, data } = artifacts(
      [lstm('a', 1, INPUT), lstm('b', 1)],
      [
        { name: 'a/kernel', shape: [2, 4] },
        { name: 'a/recurrent_kernel', shape: [1, 4] },
        { name: 'a/bias', shape: [4] },
        { name: 'b/kernel', shape: [1, 4] },
        { name: 'b/recurrent_kernel', shape: [1, 4] },
        { name: 'b/bias', shape: [4] },
      ],
    );
    const e = refusal(() => importTfjsLayers(json, data, 'm'));
    expect(e).toBeInstanceOf(ModelInvalidError);
    expect(e.message).toMatch(/return_sequences/);
  });
});

describe('TF.js importer: weights', () => {
  it('transposes kernels (I, 4H) to [4H, I], keeping Keras i, f, c, o as canonical i, f, g, o', () => {
    const { json, data } = artifacts(
      [lstm('l', 2, INPUT)],
      [
        { name: 'l/kernel', shape: [2, 8] },
        { name: 'l/recurrent_kernel', shape: [2, 8], values: iota(16, 100) },
        { name: 'l/bias', shape: [8], values: iota(8, 200) },
      ],
    );
    const layer = firstLstm(json, data);
    // kernel[i][col] = 8i + col; canonical W[row][i] = kernel[i][row]. Rows 0-1 gate i, 2-3 f, 4-5 g, 6-7 o.
    expect([...layer.W]).toEqual([0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15]);
    expect([...layer.R.subarray(0, 4)]).toEqual([100, 108, 101, 109]);
    expect([...layer.R.subarray(12, 16)]).toEqual([106, 114, 107, 115]);
    expect([...layer.b]).toEqual(iota(8, 200));
  });

  it('transposes a Dense kernel (in, out) to [out, in]', () => {
    const { json, data } = artifacts(
      [lstm('l', 1, INPUT), dense('d', 3)],
      [
        { name: 'l/kernel', shape: [2, 4] },
        { name: 'l/recurrent_kernel', shape: [1, 4] },
        { name: 'l/bias', shape: [4] },
        { name: 'd/kernel', shape: [1, 3], values: [1, 2, 3] },
        { name: 'd/bias', shape: [3], values: [4, 5, 6] },
      ],
    );
    const head = importTfjsLayers(json, data, 'm').head[0] as DenseLayer;
    expect(head.inputSize).toBe(1);
    expect(head.outputSize).toBe(3);
    expect([...head.W]).toEqual([1, 2, 3]);
    expect([...head.b]).toEqual([4, 5, 6]);
  });

  it('finds weights by name, not by position in the manifest', () => {
    const { json, data } = artifacts(
      [lstm('l', 1, INPUT)],
      [
        { name: 'l/bias', shape: [4], values: iota(4, 200) },
        { name: 'l/recurrent_kernel', shape: [1, 4], values: iota(4, 100) },
        { name: 'l/kernel', shape: [2, 4] },
      ],
    );
    const layer = firstLstm(json, data);
    expect([...layer.b]).toEqual(iota(4, 200));
    expect([...layer.R]).toEqual(iota(4, 100));
    expect([...layer.W]).toEqual([0, 4, 1, 5, 2, 6, 3, 7]);
  });

  it('reads the Keras converter layout: nested model_config, cell-scoped weight names, InputLayer', () => {
    const { json, data } = artifacts(
      [],
      [
        { name: 'lstm/lstm_cell/kernel', shape: [2, 4] },
        { name: 'lstm/lstm_cell/recurrent_kernel', shape: [1, 4] },
        { name: 'lstm/lstm_cell/bias', shape: [4] },
      ],
    );
    json.modelTopology = {
      keras_version: '2.15.0',
      backend: 'tensorflow',
      model_config: {
        class_name: 'Sequential',
        config: {
          name: 'keras_seq',
          layers: [
            { class_name: 'InputLayer', config: { name: 'events', batch_input_shape: [null, 5, 2] } },
            lstm('lstm', 1, { activation: 'tanh', recurrent_activation: 'sigmoid' }),
          ],
        },
      },
    };
    const model = importTfjsLayers(json, data, '');
    expect(model.name).toBe('keras_seq');
    expect(model.inputs).toEqual([{ name: 'events', size: 2 }]);
    expect(model.branches[0].input).toBe('events');
    expect((model.branches[0].layers[0] as LstmLayer).activations.f).toEqual({ kind: 'sigmoid' });
  });

  it('use_bias false gives zero biases', () => {
    const { json, data } = artifacts(
      [lstm('l', 1, { ...INPUT, use_bias: false }), dense('d', 1, { use_bias: false })],
      [
        { name: 'l/kernel', shape: [2, 4] },
        { name: 'l/recurrent_kernel', shape: [1, 4] },
        { name: 'd/kernel', shape: [1, 1] },
      ],
    );
    const model = importTfjsLayers(json, data, 'm');
    expect([...(model.branches[0].layers[0] as LstmLayer).b]).toEqual([0, 0, 0, 0]);
    expect([...model.head[0].b]).toEqual([0]);
  });

  it('GRU reset_after=false (what tfjs writes): one [3H] bias, on the input side only', () => {
    const { json, data } = artifacts(
      [gru('g', 1, { ...INPUT, reset_after: false })],
      [
        { name: 'g/kernel', shape: [2, 3] },
        { name: 'g/recurrent_kernel', shape: [1, 3] },
        { name: 'g/bias', shape: [3], values: [1, 2, 3] },
      ],
    );
    const layer = firstGru(json, data);
    expect(layer.linearBeforeReset).toBe(false);
    expect([...layer.bW]).toEqual([1, 2, 3]);
    expect([...layer.bR]).toEqual([0, 0, 0]);
    expect([...layer.W]).toEqual([0, 3, 1, 4, 2, 5]);
  });

  it('GRU reset_after=true (Keras): bias [2, 3H] is input bias then recurrent bias', () => {
    const { json, data } = artifacts(
      [gru('g', 1, { ...INPUT, reset_after: true })],
      [
        { name: 'g/kernel', shape: [2, 3] },
        { name: 'g/recurrent_kernel', shape: [1, 3] },
        { name: 'g/bias', shape: [2, 3], values: [1, 2, 3, 4, 5, 6] },
      ],
    );
    const layer = firstGru(json, data);
    expect(layer.linearBeforeReset).toBe(true);
    expect([...layer.bW]).toEqual([1, 2, 3]);
    expect([...layer.bR]).toEqual([4, 5, 6]);
  });

  it('GRU without reset_after in its config takes it from the bias shape', () => {
    const { json, data } = artifacts(
      [gru('g', 1, INPUT)],
      [
        { name: 'g/kernel', shape: [2, 3] },
        { name: 'g/recurrent_kernel', shape: [1, 3] },
        { name: 'g/bias', shape: [2, 3] },
      ],
    );
    expect(firstGru(json, data).linearBeforeReset).toBe(true);
  });

  it('refuses a GRU bias whose shape contradicts reset_after', () => {
    const { json, data } = artifacts(
      [gru('g', 1, { ...INPUT, reset_after: false })],
      [
        { name: 'g/kernel', shape: [2, 3] },
        { name: 'g/recurrent_kernel', shape: [1, 3] },
        { name: 'g/bias', shape: [2, 3] },
      ],
    );
    expect(refusal(() => importTfjsLayers(json, data, 'm'))).toBeInstanceOf(ModelInvalidError);
  });

  it('refuses int32 weights and quantized weights with a clear error', () => {
    const int = smallLstm();
    const entries = (int.json.weightsManifest as { weights: W[] }[])[0].weights;
    entries[1].dtype = 'int32';
    const e1 = refusal(() => importTfjsLayers(int.json, int.data, 'm'));
    expect(e1).toBeInstanceOf(ModelInvalidError);
    expect(e1.message).toMatch(/lstm_LSTM1\/recurrent_kernel.*int32.*float32 weights only/);

    const q = smallLstm();
    (q.json.weightsManifest as { weights: W[] }[])[0].weights[0].quantization = {
      dtype: 'uint8',
      scale: 0.1,
      min: -1,
    };
    const e2 = refusal(() => importTfjsLayers(q.json, q.data, 'm'));
    expect(e2).toBeInstanceOf(ModelInvalidError);
    expect(e2.message).toMatch(/lstm_LSTM1\/kernel.*quantized/);
  });

  it('refuses weight data shorter or longer than the manifest', () => {
    const { json, data } = smallLstm();
    expect(refusal(() => importTfjsLayers(json, data.subarray(0, data.length - 4), 'm')).message).toMatch(
      /too short/,
    );
    const longer = new Uint8Array(data.length + 4);
    longer.set(data);
    expect(refusal(() => importTfjsLayers(json, longer, 'm')).message).toMatch(/describes/);
  });

  it('refuses a missing weight, naming the layer and the role', () => {
    const { json, data } = artifacts(
      [lstm('l', 1, INPUT)],
      [
        { name: 'l/kernel', shape: [2, 4] },
        { name: 'l/bias', shape: [4] },
      ],
    );
    const e = refusal(() => importTfjsLayers(json, data, 'm'));
    expect(e).toBeInstanceOf(ModelInvalidError);
    expect(e.message).toMatch(/'l' has no 'recurrent_kernel'/);
  });
});

describe('TF.js importer: activations', () => {
  const hard02 = { kind: 'hard_sigmoid', alpha: 0.2, beta: 0.5 };

  it("maps tfjs's default recurrent activation (omitted, 'hard_sigmoid' or 'hardSigmoid') to clip(0.2x + 0.5)", () => {
    for (const extra of [
      {},
      { recurrent_activation: 'hard_sigmoid' },
      { recurrent_activation: 'hardSigmoid' },
    ]) {
      const { json, data } = smallLstm(extra);
      const layer = firstLstm(json, data);
      expect(layer.activations.f).toEqual(hard02);
      expect(layer.activations.g).toEqual({ kind: 'tanh' });
      expect(layer.activations.h).toEqual({ kind: 'tanh' });
    }
  });

  it('gives hard_sigmoid its Keras 3 slope (1/6) when the topology comes from Keras 3', () => {
    const { json, data } = smallLstm({ recurrent_activation: 'hard_sigmoid' }, { keras_version: '3.6.0' });
    expect(firstLstm(json, data).activations.f).toEqual({ kind: 'hard_sigmoid', alpha: 1 / 6, beta: 0.5 });
  });

  it('defaults an omitted recurrent activation to sigmoid for Keras >= 2.3', () => {
    const { json, data } = smallLstm({}, { keras_version: '2.15.0' });
    expect(firstLstm(json, data).activations.f).toEqual({ kind: 'sigmoid' });
  });

  it('maps each name tfjs writes, in either spelling, and a null activation to linear', () => {
    const cases: [unknown, string][] = [
      ['linear', 'linear'],
      [null, 'linear'],
      ['sigmoid', 'sigmoid'],
      ['tanh', 'tanh'],
      ['relu', 'relu'],
      ['softmax', 'softmax'],
      ['softsign', 'softsign'],
      ['softplus', 'softplus'],
      ['elu', 'elu'],
      [{ class_name: 'Sigmoid', config: {} }, 'sigmoid'],
    ];
    for (const [activation, kind] of cases) {
      const { json, data } = artifacts(
        [lstm('l', 1, INPUT), dense('d', 1, { activation })],
        [
          { name: 'l/kernel', shape: [2, 4] },
          { name: 'l/recurrent_kernel', shape: [1, 4] },
          { name: 'l/bias', shape: [4] },
          { name: 'd/kernel', shape: [1, 1] },
          { name: 'd/bias', shape: [1] },
        ],
      );
      expect(importTfjsLayers(json, data, 'm').head[0].activation.kind).toBe(kind);
    }
  });

  it('refuses an activation it cannot run, naming class and layer', () => {
    const { json, data } = smallLstm({ activation: 'selu' });
    const e = refusal(() => importTfjsLayers(json, data, 'm'));
    expect(e).toBeInstanceOf(UnsupportedLayerError);
    expect(e.message).toContain("LSTM 'lstm_LSTM1'");
    expect(e.message).toContain('selu');
  });

  it('refuses softmax inside a recurrent layer', () => {
    const { json, data } = smallLstm({ recurrent_activation: 'softmax' });
    expect(refusal(() => importTfjsLayers(json, data, 'm'))).toBeInstanceOf(UnsupportedLayerError);
  });
});

describe('TF.js importer: model and files', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('names the model from the argument, else the topology; source tfjs; input from the first layer', () => {
    const { json, data } = smallLstm();
    const named = importTfjsLayers(json, data, 'visits');
    expect(named.name).toBe('visits');
    expect(named.source).toBe('tfjs');
    expect(named.inputs).toEqual([{ name: 'lstm_LSTM1_input', size: 2 }]);
    expect(named.branches).toHaveLength(1);
    expect(importTfjsLayers(json, data, '').name).toBe('seq');
  });

  it('skips Dropout and reads shards in manifest order from beside model.json', async () => {
    const { json, data } = artifacts(
      [lstm('l', 1, INPUT), { class_name: 'Dropout', config: { name: 'drop', rate: 0.5 } }, dense('d', 1)],
      [
        { name: 'l/kernel', shape: [2, 4] },
        { name: 'l/recurrent_kernel', shape: [1, 4], values: iota(4, 100) },
        { name: 'l/bias', shape: [4], values: iota(4, 200) },
        { name: 'd/kernel', shape: [1, 1], values: [7] },
        { name: 'd/bias', shape: [1], values: [8] },
      ],
    );
    const dir = mkdtempSync(path.join(tmpdir(), 'tfjs-import-'));
    dirs.push(dir);
    // Two groups, the first with two shards, split mid-tensor as tfjs's 4 MB sharding may do.
    const manifest = json.weightsManifest as { paths: string[]; weights: unknown[] }[];
    const w = manifest[0].weights;
    json.weightsManifest = [
      { paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'], weights: w.slice(0, 3) },
      { paths: ['group2-shard1of1.bin'], weights: w.slice(3) },
    ];
    writeFileSync(path.join(dir, 'group1-shard1of2.bin'), data.subarray(0, 18));
    writeFileSync(path.join(dir, 'group1-shard2of2.bin'), data.subarray(18, 64));
    writeFileSync(path.join(dir, 'group2-shard1of1.bin'), data.subarray(64));
    writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    const model = await loadTfjsModel(path.join(dir, 'model.json'));
    const layer = model.branches[0].layers[0] as LstmLayer;
    expect([...layer.R]).toEqual(iota(4, 100));
    expect([...layer.b]).toEqual(iota(4, 200));
    expect([...model.head[0].W]).toEqual([7]);
    expect([...model.head[0].b]).toEqual([8]);
  });

  it('refuses a shard path that leaves the model folder', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tfjs-import-'));
    dirs.push(dir);
    const { json } = smallLstm();
    (json.weightsManifest as { paths: string[] }[])[0].paths = ['../elsewhere.bin'];
    writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    const e = await refusalOf(loadTfjsModel(path.join(dir, 'model.json')));
    expect(e).toBeInstanceOf(ModelInvalidError);
    expect(e.message).toMatch(/leaves the folder/);
  });

  it('a fixture model.json written by tfjs imports', async () => {
    const file = path.resolve(BAD, '../../golden/fixtures/tfjs-gru/model.json');
    const json = JSON.parse(readFileSync(file, 'utf8'));
    expect(json.modelTopology.keras_version).toMatch(/^tfjs-layers/);
    const model = await loadTfjsModel(file, 'g');
    expect(model.inputs[0].size).toBe(3);
    expect((model.branches[0].layers[0] as GruLayer).activations.f).toEqual({
      kind: 'hard_sigmoid',
      alpha: 0.2,
      beta: 0.5,
    });
  });
});
