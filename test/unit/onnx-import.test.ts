import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import {
  ModelFormatError,
  ModelInvalidError,
  NotStreamableError,
  UnsupportedOpError,
} from '../../src/errors.js';
import { loadOnnxModel, parseOnnxModel } from '../../src/formats/onnx/index.js';
import { ONNX_LSTM_TO_CANONICAL, reorderGates } from '../../src/formats/onnx/recurrent.js';
import { decodeTensor } from '../../src/formats/onnx/tensors.js';
import type { LstmLayer } from '../../src/model/types.js';

const { onnx } = onnxProto;
const bad = join(import.meta.dirname, '..', 'fixtures', 'onnx-bad');

// --- a tiny graph builder, so each refusal is tested on the smallest graph that shows it ----------

type Attr = onnxProto.onnx.IAttributeProto;
const A = {
  int: (name: string, i: number): Attr => ({ name, type: 2, i }),
  float: (name: string, f: number): Attr => ({ name, type: 1, f }),
  str: (name: string, s: string): Attr => ({ name, type: 3, s: new TextEncoder().encode(s) }),
  ints: (name: string, ints: number[]): Attr => ({ name, type: 7, ints }),
  floats: (name: string, floats: number[]): Attr => ({ name, type: 6, floats }),
  strs: (name: string, s: string[]): Attr => ({
    name,
    type: 8,
    strings: s.map((x) => new TextEncoder().encode(x)),
  }),
};

function floats(name: string, dims: number[], values: number[]): onnxProto.onnx.ITensorProto {
  return { name, dims, dataType: 1, floatData: values };
}

function int64s(name: string, dims: number[], values: number[]): onnxProto.onnx.ITensorProto {
  return { name, dims, dataType: 7, int64Data: values };
}

function node(op: string, input: string[], output: string[], name: string, attribute: Attr[] = []) {
  return { opType: op, input, output, name, attribute };
}

function encode(
  nodes: onnxProto.onnx.INodeProto[],
  initializer: onnxProto.onnx.ITensorProto[],
  inputs: Array<[string, Array<number | string>]> = [['x', ['T', 1, 3]]],
  output = 'y',
): Uint8Array {
  const valueInfo = (name: string, dims: Array<number | string>) => ({
    name,
    type: {
      tensorType: {
        elemType: 1,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  });
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      node: nodes,
      initializer,
      input: inputs.map(([n, d]) => valueInfo(n, d)),
      output: [{ name: output }],
    },
  }).finish();
}

const fill = (n: number, v: number) => new Array<number>(n).fill(v);
/** ONNX blocks i, o, f, c of H rows × cols filled with 1, 2, 3, 4. */
const blocks = (H: number, cols: number, values = [1, 2, 3, 4]) => values.flatMap((v) => fill(H * cols, v));

const H = 2;
const I = 3;
function lstmWeights(prefix = '', inSize = I) {
  return [
    floats(`${prefix}W`, [1, 4 * H, inSize], blocks(H, inSize)),
    floats(`${prefix}R`, [1, 4 * H, H], blocks(H, H, [5, 6, 7, 8])),
    // Wb blocks 10, 20, 30, 40 and Rb blocks 1, 2, 3, 4 (ONNX order i, o, f, c).
    floats(`${prefix}B`, [1, 8 * H], [...blocks(H, 1, [10, 20, 30, 40]), ...blocks(H, 1)]),
  ];
}
const headWeights = [
  floats('Wo', [H, 2], [1, 2, 3, 4]),
  floats('bo', [2], [0.5, -0.5]),
  int64s('ax1', [1], [1]),
];
/** x → LSTM → Squeeze(num_directions) → MatMul → Add. */
function lstmGraph(
  opts: { lstmInputs?: string[]; lstmAttrs?: Attr[]; extraInits?: onnxProto.onnx.ITensorProto[] } = {},
) {
  return encode(
    [
      node('LSTM', opts.lstmInputs ?? ['x', 'W', 'R', 'B'], ['Y', 'Y_h', 'Y_c'], 'lstm', [
        A.int('hidden_size', H),
        ...(opts.lstmAttrs ?? []),
      ]),
      node('Squeeze', ['Y', 'ax1'], ['Ys'], 'squeeze'),
      node('MatMul', ['Ys', 'Wo'], ['mm'], 'fc_matmul'),
      node('Add', ['mm', 'bo'], ['y'], 'fc_add'),
    ],
    [...lstmWeights(), ...headWeights, ...(opts.extraInits ?? [])],
  );
}

function refusal(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the import to be refused');
}

describe('ONNX gate order', () => {
  it('reorders ONNX i, o, f, c blocks to canonical i, f, g, o', () => {
    const src = Float32Array.from([1, 1, 2, 2, 3, 3, 4, 4]); // H=2, one column
    expect([...reorderGates(src, 2, 1, ONNX_LSTM_TO_CANONICAL)]).toEqual([1, 1, 3, 3, 4, 4, 2, 2]);
  });

  it('imports W, R, summed B and P [i, o, f] into canonical order', () => {
    const model = parseOnnxModel(
      lstmGraph({
        lstmInputs: ['x', 'W', 'R', 'B', '', '', '', 'P'],
        extraInits: [floats('P', [1, 3 * H], [...fill(H, 5), ...fill(H, 6), ...fill(H, 7)])],
      }),
      'gates',
    );
    const layer = model.branches[0].layers[0] as LstmLayer;
    const block = (m: Float32Array, cols: number) => [0, 1, 2, 3].map((g) => m[g * H * cols]);
    expect(block(layer.W, I)).toEqual([1, 3, 4, 2]);
    expect(block(layer.R, H)).toEqual([5, 7, 8, 6]);
    expect(block(layer.b, 1)).toEqual([11, 33, 44, 22]);
    expect(layer.peephole && [layer.peephole.i[0], layer.peephole.f[0], layer.peephole.o[0]]).toEqual([
      5, 7, 6,
    ]);
    // MatMul weight [in, out] becomes the dense layer's [out, in].
    expect([...model.head[0].W]).toEqual([1, 3, 2, 4]);
    expect([...model.head[0].b]).toEqual([0.5, -0.5]);
    expect(model).toMatchObject({ name: 'gates', source: 'onnx', inputs: [{ name: 'x', size: I }] });
  });

  it('keeps GRU z, r, h and splits B into input and recurrent biases', () => {
    const model = parseOnnxModel(
      encode(
        [
          node('GRU', ['x', 'W', 'R', 'B'], ['Y'], 'gru', [A.int('linear_before_reset', 1)]),
          node('Squeeze', ['Y', 'ax1'], ['Ys'], 'squeeze'),
          node('MatMul', ['Ys', 'Wo'], ['y'], 'fc'),
        ],
        [
          floats('W', [1, 3 * H, I], blocks(H, I, [1, 2, 3])),
          floats('R', [1, 3 * H, H], blocks(H, H, [4, 5, 6])),
          floats('B', [1, 6 * H], [...blocks(H, 1, [7, 8, 9]), ...blocks(H, 1, [10, 11, 12])]),
          ...headWeights,
        ],
      ),
      'gru',
    );
    const layer = model.branches[0].layers[0];
    if (layer.kind !== 'gru') throw new Error('expected a GRU');
    expect([0, 1, 2].map((g) => layer.W[g * H * I])).toEqual([1, 2, 3]);
    expect([...layer.bW]).toEqual(blocks(H, 1, [7, 8, 9]));
    expect([...layer.bR]).toEqual(blocks(H, 1, [10, 11, 12]));
    expect(layer.linearBeforeReset).toBe(true);
  });
});

describe('ONNX tensor decoding', () => {
  const values = [0.5, -1.25, 3e-8, 1024];

  it('reads float raw_data (little-endian) and float_data alike', () => {
    const raw = new Uint8Array(16);
    const view = new DataView(raw.buffer);
    values.forEach((v, i) => {
      view.setFloat32(i * 4, v, true);
    });
    const fromRaw = decodeTensor({ name: 'a', dims: [2, 2], dataType: 1, rawData: raw });
    const fromFields = decodeTensor({ name: 'b', dims: [2, 2], dataType: 1, floatData: values });
    expect([...fromRaw.floats!]).toEqual([...Float32Array.from(values)]);
    expect([...fromFields.floats!]).toEqual([...fromRaw.floats!]);
    expect(fromRaw.dims).toEqual([2, 2]);
  });

  it('reads a raw_data view that does not start at its buffer start', () => {
    const backing = new Uint8Array(20);
    const raw = backing.subarray(3, 19);
    values.forEach((v, i) => {
      new DataView(raw.buffer, raw.byteOffset).setFloat32(i * 4, v, true);
    });
    expect([...decodeTensor({ name: 'a', dims: [4], dataType: 1, rawData: raw }).floats!]).toEqual([
      ...Float32Array.from(values),
    ]);
  });

  it('reads int64 shapes from raw_data and int64_data, and doubles as float32', () => {
    const raw = new Uint8Array(16);
    new DataView(raw.buffer).setBigInt64(0, -1n, true);
    new DataView(raw.buffer).setBigInt64(8, 7n, true);
    expect(decodeTensor({ name: 's', dims: [2], dataType: 7, rawData: raw }).ints).toEqual([-1, 7]);
    expect(decodeTensor({ name: 's', dims: [2], dataType: 7, int64Data: [-1, 7] }).ints).toEqual([-1, 7]);
    expect([...decodeTensor({ name: 'd', dims: [1], dataType: 11, doubleData: [0.1] }).floats!]).toEqual([
      Math.fround(0.1),
    ]);
  });

  it('refuses external data and a count that does not match the shape', () => {
    const ext = refusal(() =>
      decodeTensor({
        name: 'big',
        dims: [4],
        dataType: 1,
        dataLocation: 1,
        externalData: [{ key: 'location', value: 'w.bin' }],
      }),
    );
    expect(ext).toBeInstanceOf(ModelInvalidError);
    expect(ext.message).toMatch(/'big'.*external data/);
    expect(
      refusal(() => decodeTensor({ name: 'short', dims: [3], dataType: 1, floatData: [1] })).message,
    ).toMatch(/'short' holds 1 values but its shape needs 3/);
  });
});

describe('ONNX refusals', () => {
  const load = (file: string) => () => parseOnnxModel(readFileSync(join(bad, file)), file);

  it('refuses a bidirectional LSTM, naming the node', () => {
    const err = refusal(load('bidirectional_lstm.onnx'));
    expect(err).toBeInstanceOf(NotStreamableError);
    expect(err.message).toMatch(/layer '\/rnn\/LSTM' cannot be streamed: it is bidirectional/);
  });

  it('refuses a reverse GRU, naming the node', () => {
    const err = refusal(load('reverse_gru.onnx'));
    expect(err).toBeInstanceOf(NotStreamableError);
    expect(err.message).toMatch(/layer 'gru_0' cannot be streamed: its direction is 'reverse'/);
  });

  it('refuses an op on the input before the LSTM, naming op and node', () => {
    const err = refusal(load('mul_before_lstm.onnx'));
    expect(err).toBeInstanceOf(UnsupportedOpError);
    expect(err).toMatchObject({ op: 'Mul', node: 'scale_input' });
    expect(err.message).toMatch(/unsupported ONNX op 'Mul' at node 'scale_input'/);
  });

  it('refuses a non-zero initial state', () => {
    const err = refusal(load('nonzero_initial_state.onnx'));
    expect(err).toBeInstanceOf(ModelInvalidError);
    expect(err.message).toMatch(/node 'lstm_0': initial_h 'h0' is not zero/);
  });

  it('refuses bytes that are not ONNX', () => {
    expect(refusal(() => parseOnnxModel(new TextEncoder().encode('{"not": "onnx"}'), 'x'))).toBeInstanceOf(
      ModelFormatError,
    );
  });

  it('refuses an unknown op anywhere, naming it', () => {
    const bytes = encode(
      [
        node('Conv', ['x', 'K'], ['xc'], 'conv_in'),
        node('LSTM', ['xc', 'W', 'R', 'B'], ['Y'], 'lstm'),
        node('Squeeze', ['Y', 'ax1'], ['y'], 'squeeze'),
      ],
      [...lstmWeights(), ...headWeights, floats('K', [1], [1])],
    );
    expect(refusal(() => parseOnnxModel(bytes, 'conv'))).toMatchObject({ op: 'Conv', node: 'conv_in' });
  });

  it('refuses sequence_lens and a head reading the cell state', () => {
    const seqLens = lstmGraph({
      lstmInputs: ['x', 'W', 'R', 'B', 'lens'],
      extraInits: [int64s('lens', [1], [5])],
    });
    expect(refusal(() => parseOnnxModel(seqLens, 's')).message).toMatch(
      /'LSTM' at node 'lstm': sequence_lens/,
    );
    const cell = encode(
      [
        node('LSTM', ['x', 'W', 'R', 'B'], ['Y', 'Y_h', 'Y_c'], 'lstm'),
        node('Squeeze', ['Y_c', 'ax1'], ['y'], 'squeeze'),
      ],
      [...lstmWeights(), ...headWeights],
    );
    expect(refusal(() => parseOnnxModel(cell, 'c')).message).toMatch(/cell-state output Y_c/);
  });

  it('names the tensor when stacked layer sizes do not chain', () => {
    const bytes = encode(
      [
        node('LSTM', ['x', 'W', 'R', 'B'], ['Y'], 'lstm1'),
        node('Squeeze', ['Y', 'ax1'], ['Ys'], 'squeeze'),
        node('LSTM', ['Ys', 'L2W', 'L2R', 'L2B'], ['Y2'], 'lstm2'),
        node('Squeeze', ['Y2', 'ax1'], ['y'], 'squeeze2'),
      ],
      [...lstmWeights(), ...lstmWeights('L2', 5), ...headWeights],
    );
    const err = refusal(() => parseOnnxModel(bytes, 'chain'));
    expect(err).toBeInstanceOf(ModelInvalidError);
    expect(err.message).toMatch(/node 'lstm2': W 'L2W' takes 5 inputs/);
  });

  it('refuses a reshape that mixes time steps into the features', () => {
    const bytes = encode(
      [
        node('LSTM', ['x', 'W', 'R', 'B'], ['Y'], 'lstm'),
        node('Reshape', ['Y', 'flat'], ['y'], 'flatten_all'),
      ],
      [...lstmWeights(), int64s('flat', [2], [1, -1])],
    );
    expect(refusal(() => parseOnnxModel(bytes, 'r'))).toMatchObject({ op: 'Reshape', node: 'flatten_all' });
  });

  it('refuses selecting a time step other than the last, and a softmax across time', () => {
    const first = encode(
      [
        node('LSTM', ['x', 'W', 'R', 'B'], ['Y'], 'lstm'),
        node('Gather', ['Y', 'zero'], ['y'], 'first_step', [A.int('axis', 0)]),
      ],
      [...lstmWeights(), int64s('zero', [], [0])],
    );
    expect(refusal(() => parseOnnxModel(first, 'g'))).toMatchObject({ op: 'Gather', node: 'first_step' });
    const across = encode(
      [
        node('LSTM', ['x', 'W', 'R', 'B'], ['Y'], 'lstm'),
        node('Softmax', ['Y'], ['y'], 'sm', [A.int('axis', 0)]),
      ],
      lstmWeights(),
    );
    expect(refusal(() => parseOnnxModel(across, 's'))).toMatchObject({ op: 'Softmax', node: 'sm' });
  });

  it('refuses an initial state fed from a second graph input', () => {
    const bytes = encode(
      [
        node('LSTM', ['x', 'W', 'R', 'B', '', 'h0'], ['Y'], 'lstm'),
        node('Squeeze', ['Y', 'ax1'], ['y'], 'squeeze'),
      ],
      [...lstmWeights(), ...headWeights],
      [
        ['x', ['T', 1, 3]],
        ['h0', [1, 1, H]],
      ],
    );
    expect(refusal(() => parseOnnxModel(bytes, 'h')).message).toMatch(/initial_h 'h0' is not zero/);
  });

  it('asks for explicit parameters where ONNX Runtime and the spec disagree', () => {
    const bytes = lstmGraph({ lstmAttrs: [A.strs('activations', ['Sigmoid', 'Affine', 'Tanh'])] });
    expect(refusal(() => parseOnnxModel(bytes, 'a')).message).toMatch(
      /Affine needs an explicit activation_alpha/,
    );
    const unknown = lstmGraph({ lstmAttrs: [A.strs('activations', ['Sigmoid', 'Swish', 'Tanh'])] });
    expect(refusal(() => parseOnnxModel(unknown, 'u')).message).toMatch(/activation 'Swish'/);
  });
});

describe('ONNX graphs it accepts beyond the fixtures', () => {
  it('loads a file, naming the model after it', async () => {
    const file = join(
      import.meta.dirname,
      '..',
      'golden',
      'fixtures',
      'onnx-torch-lstm1-seqfirst',
      'model.onnx',
    );
    const model = await loadOnnxModel(file);
    expect(model.name).toBe('model');
    expect(model.branches[0].layers.map((l) => [l.kind, l.inputSize, l.hiddenSize])).toEqual([
      ['lstm', 4, 8],
    ]);
    await expect(loadOnnxModel(join(bad, 'missing.onnx'))).rejects.toBeInstanceOf(ModelFormatError);
  });

  it('reads the last step through Y_h, with alpha/beta consumed in order', () => {
    const model = parseOnnxModel(
      encode(
        [
          node('LSTM', ['x', 'W', 'R', 'B'], ['', 'Y_h'], 'lstm', [
            A.strs('activations', ['HardSigmoid', 'LeakyRelu', 'ScaledTanh']),
            A.floats('activation_alpha', [0.3, 0.02, 1.5]),
            A.floats('activation_beta', [0.6, 0.7]),
            A.float('clip', 3),
          ]),
          node('Squeeze', ['Y_h', 'ax01'], ['h'], 'squeeze'),
          node('Gemm', ['h', 'Wg', 'bo'], ['g'], 'fc', [A.int('transB', 1), A.float('alpha', 2)]),
          node('Sigmoid', ['g'], ['y'], 'out'),
        ],
        [...lstmWeights(), ...headWeights, int64s('ax01', [1], [0]), floats('Wg', [2, H], [1, 2, 3, 4])],
        [['x', ['T', 1, 3]]],
      ),
      'last',
    );
    const layer = model.branches[0].layers[0] as LstmLayer;
    // ONNX attributes are float32; the importer keeps them exactly as ONNX Runtime reads them.
    const f32 = Math.fround;
    expect(layer.activations).toEqual({
      f: { kind: 'hard_sigmoid', alpha: f32(0.3), beta: f32(0.6) },
      g: { kind: 'leaky_relu', alpha: f32(0.02) },
      h: { kind: 'scaled_tanh', alpha: 1.5, beta: f32(0.7) },
    });
    expect(layer.clip).toBe(3);
    expect([...model.head[0].W]).toEqual([2, 4, 6, 8]);
    expect(model.head[0].activation).toEqual({ kind: 'sigmoid' });
  });
});
