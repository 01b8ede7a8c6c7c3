import onnxProto from 'onnx-proto';
import { stateLayout } from '../../layout.js';
import type { Activation, DenseLayer, HeadActivation, Model, RecurrentLayer } from '../../types.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;
const A = onnx.AttributeProto.AttributeType;

/** ONNX recurrent activation names, with the parameters each consumes (in list order). */
const RNN_ACTIVATIONS: Record<Activation['kind'], string> = {
  sigmoid: 'Sigmoid',
  tanh: 'Tanh',
  relu: 'Relu',
  linear: 'Affine',
  hard_sigmoid: 'HardSigmoid',
  affine: 'Affine',
  leaky_relu: 'LeakyRelu',
  thresholded_relu: 'ThresholdedRelu',
  scaled_tanh: 'ScaledTanh',
  elu: 'Elu',
  softsign: 'Softsign',
  softplus: 'Softplus',
};

/** Head activations as ONNX operators; those missing here (affine, scaled_tanh) keep a model off ORT. */
const HEAD_OPS: Partial<Record<HeadActivation['kind'], string>> = {
  sigmoid: 'Sigmoid',
  tanh: 'Tanh',
  relu: 'Relu',
  hard_sigmoid: 'HardSigmoid',
  leaky_relu: 'LeakyRelu',
  thresholded_relu: 'ThresholdedRelu',
  elu: 'Elu',
  softsign: 'Softsign',
  softplus: 'Softplus',
  softmax: 'Softmax',
};

/** Whether the graph below can express `model` (every recurrent variant can; a few head activations cannot). */
export function ortGraphSupports(model: Model): boolean {
  return model.head.every((d) => d.activation.kind === 'linear' || HEAD_OPS[d.activation.kind] !== undefined);
}

function tensor(name: string, dims: number[], data: Float32Array | BigInt64Array) {
  return onnx.TensorProto.create({
    name,
    dims,
    dataType: data instanceof Float32Array ? FLOAT : INT64,
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  });
}

function valueInfo(name: string, dims: (number | string)[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
}

const int = (name: string, v: number) => ({ name, type: A.INT, i: v });
const float = (name: string, v: number) => ({ name, type: A.FLOAT, f: v });

/** Rows of `m` (blocks of `rows` rows of `cols`) reordered: block k of the result is block order[k] of m. */
function reorder(m: Float32Array, order: readonly number[], rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  order.forEach((src, dst) => {
    out.set(m.subarray(src * rows * cols, (src + 1) * rows * cols), dst * rows * cols);
  });
  return out;
}

function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = m[r * cols + c];
  return t;
}

function rnnActivationAttributes(acts: readonly Activation[]) {
  const alphas: number[] = [];
  const betas: number[] = [];
  for (const a of acts) {
    if (a.kind === 'linear') {
      alphas.push(1);
      betas.push(0);
    } else {
      if ('alpha' in a) alphas.push(a.alpha);
      if ('beta' in a) betas.push(a.beta);
    }
  }
  return [
    {
      name: 'activations',
      type: A.STRINGS,
      strings: acts.map((a) => new TextEncoder().encode(RNN_ACTIVATIONS[a.kind])),
    },
    ...(alphas.length > 0 ? [{ name: 'activation_alpha', type: A.FLOATS, floats: alphas }] : []),
    ...(betas.length > 0 ? [{ name: 'activation_beta', type: A.FLOATS, floats: betas }] : []),
  ];
}

/**
 * The whole model as one ONNX graph (opset 14) that advances a batch of keys by one step:
 * inputs `state` [1, B, S] (the keys' flat states, as the kernels take them) and `x0`, `x1`, …
 * [1, B, size] (one per model input); outputs `next` [1, B, S] and `out` [1, B, O]. Each recurrent
 * layer is one ONNX LSTM or GRU node run for a sequence of 1 from the key's h (and c), split out
 * of `state` inside the graph, so the caller hands over its state buffer as it is. The leading 1
 * is the sequence axis: with it, the pieces split from the state are the recurrent nodes' initial
 * states and their outputs concatenate back into the state with no reshaping nodes, each of which
 * cost a few µs a run.
 */
export function ortGraph(model: Model): Uint8Array {
  const layout = stateLayout(model);
  const S = layout.size;
  const nodes: ReturnType<typeof onnx.NodeProto.create>[] = [];
  const inits: ReturnType<typeof tensor>[] = [];
  const node = (opType: string, input: string[], output: string[], attribute: object[] = []) =>
    nodes.push(onnx.NodeProto.create({ opType, input, output, attribute }));

  // The state's pieces in layout order (h, then c for an LSTM, per layer), each [1, B, H].
  const sizes: number[] = [];
  const pieces: string[] = [];
  layout.slots.forEach((s, j) => {
    sizes.push(s.hiddenSize);
    pieces.push(`h${j}`);
    if (s.c >= 0) {
      sizes.push(s.hiddenSize);
      pieces.push(`c${j}`);
    }
  });
  if (pieces.length > 1) {
    inits.push(tensor('splits', [sizes.length], BigInt64Array.from(sizes, BigInt)));
    node('Split', ['state', 'splits'], pieces, [int('axis', 2)]);
  } else {
    node('Identity', ['state'], pieces);
  }

  // A single branch with no head outputs its last h as it is: naming that h `out` spares a copy.
  const direct = model.branches.length === 1 && model.head.length === 0;
  const nLayers = layout.slots.length;
  const next: string[] = [];
  const lastH: string[] = [];
  let j = 0;
  for (const branch of model.branches) {
    let x = `x${model.inputs.findIndex((i) => i.name === branch.input)}`;
    for (const layer of branch.layers) {
      const yh = direct && j === nLayers - 1 ? 'out' : `yh${j}`;
      recurrentNode(layer, j, x, yh, node, inits);
      next.push(yh);
      if (layer.kind === 'lstm') next.push(`yc${j}`);
      x = yh;
      j++;
    }
    lastH.push(x);
  }
  if (next.length > 1) node('Concat', next, ['next'], [int('axis', 2)]);
  else node('Identity', next, ['next']);

  if (!direct) {
    let y = lastH[0];
    if (lastH.length > 1) {
      node('Concat', lastH, ['concat'], [int('axis', 2)]);
      y = 'concat';
    }
    model.head.forEach((d, k) => {
      y = denseNodes(d, k, y, node, inits);
    });
    node('Identity', [y], ['out']);
  }

  const O = model.head.length > 0 ? model.head[model.head.length - 1].outputSize : sumLast(model);
  const graph = onnx.GraphProto.create({
    name: 'cellstream-step',
    node: nodes,
    initializer: inits,
    input: [
      valueInfo('state', [1, 'B', S]),
      ...model.inputs.map((inp, m) => valueInfo(`x${m}`, [1, 'B', inp.size])),
    ],
    output: [valueInfo('next', [1, 'B', S]), valueInfo('out', [1, 'B', O])],
  });
  const proto = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'cellstream',
    opsetImport: [{ domain: '', version: 14 }],
    graph,
  });
  return onnx.ModelProto.encode(proto).finish();
}

function sumLast(model: Model): number {
  return model.branches.reduce((n, b) => n + b.layers[b.layers.length - 1].hiddenSize, 0);
}

type AddNode = (opType: string, input: string[], output: string[], attribute?: object[]) => void;

/** Our LSTM gates i, f, g, o → ONNX's i, o, f, c (for each ONNX block, the block of ours it takes). */
const LSTM_ORDER = [0, 3, 1, 2];

function recurrentNode(
  layer: RecurrentLayer,
  j: number,
  x: string,
  yh: string,
  node: AddNode,
  inits: ReturnType<typeof tensor>[],
): void {
  const { inputSize: I, hiddenSize: H } = layer;
  const common = [int('hidden_size', H), ...(layer.clip === undefined ? [] : [float('clip', layer.clip)])];
  if (layer.kind === 'lstm') {
    const bias = new Float32Array(8 * H);
    bias.set(reorder(layer.b, LSTM_ORDER, H, 1)); // Wb; Rb stays zero: the canonical bias is the sum
    inits.push(
      tensor(`W${j}`, [1, 4 * H, I], reorder(layer.W, LSTM_ORDER, H, I)),
      tensor(`R${j}`, [1, 4 * H, H], reorder(layer.R, LSTM_ORDER, H, H)),
      tensor(`B${j}`, [1, 8 * H], bias),
    );
    const inputs = [x, `W${j}`, `R${j}`, `B${j}`, '', `h${j}`, `c${j}`];
    if (layer.peephole) {
      const p = new Float32Array(3 * H); // ONNX P: i, o, f
      p.set(layer.peephole.i, 0);
      p.set(layer.peephole.o, H);
      p.set(layer.peephole.f, 2 * H);
      inits.push(tensor(`P${j}`, [1, 3 * H], p));
      inputs.push(`P${j}`);
    }
    const { f, g, h } = layer.activations;
    node(
      'LSTM',
      inputs,
      ['', yh, `yc${j}`],
      [...common, int('input_forget', layer.inputForget ? 1 : 0), ...rnnActivationAttributes([f, g, h])],
    );
  } else {
    const bias = new Float32Array(6 * H);
    bias.set(layer.bW, 0);
    bias.set(layer.bR, 3 * H);
    inits.push(
      tensor(`W${j}`, [1, 3 * H, I], layer.W),
      tensor(`R${j}`, [1, 3 * H, H], layer.R),
      tensor(`B${j}`, [1, 6 * H], bias),
    );
    const { f, g } = layer.activations;
    node(
      'GRU',
      [x, `W${j}`, `R${j}`, `B${j}`, '', `h${j}`],
      ['', yh],
      [
        ...common,
        int('linear_before_reset', layer.linearBeforeReset ? 1 : 0),
        ...rnnActivationAttributes([f, g]),
      ],
    );
  }
}

function denseNodes(
  d: DenseLayer,
  k: number,
  y: string,
  node: AddNode,
  inits: ReturnType<typeof tensor>[],
): string {
  inits.push(
    tensor(`Wd${k}`, [d.inputSize, d.outputSize], transpose(d.W, d.outputSize, d.inputSize)),
    tensor(`bd${k}`, [d.outputSize], d.b),
  );
  node('MatMul', [y, `Wd${k}`], [`mm${k}`]);
  node('Add', [`mm${k}`, `bd${k}`], [`lin${k}`]);
  const a = d.activation;
  if (a.kind === 'linear') return `lin${k}`;
  const attrs: object[] = [];
  if (a.kind === 'softmax') attrs.push(int('axis', -1));
  if ('alpha' in a) attrs.push(float('alpha', a.alpha));
  if ('beta' in a) attrs.push(float('beta', a.beta));
  node(HEAD_OPS[a.kind]!, [`lin${k}`], [`act${k}`], attrs);
  return `act${k}`;
}
