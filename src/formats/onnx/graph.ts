import type onnxProto from 'onnx-proto';
import { ModelInvalidError, UnsupportedOpError } from '../../errors.js';
import type { DenseLayer, HeadActivation, RecurrentLayer } from '../../model/types.js';
import { Attributes } from './attributes.js';
import { toNumber } from './decode.js';
import { addBias, appendLinear, applyActivation } from './head.js';
import { gruLayer, lstmLayer, type RecurrentWeights } from './recurrent.js';
import { add, div, isNum, isOne, mul, num, product, type Size, sameSize, show, symbol } from './symbolic.js';
import { type ConstTensor, decodeTensor } from './tensors.js';
import {
  type Axis,
  FEATURES,
  intsOf,
  isUnit,
  isZero,
  type Net,
  numbersOf,
  UNIT,
  unitAxis,
  type Value,
} from './values.js';

type IGraphProto = onnxProto.onnx.IGraphProto;
type INodeProto = onnxProto.onnx.INodeProto;

/** What the walk found: the recurrent chain and head feeding the graph's first output. */
export interface WalkResult {
  readonly inputName: string;
  readonly layers: readonly RecurrentLayer[];
  readonly head: readonly DenseLayer[];
}

/** Ops that only compute shapes, indices and zero states; allowed anywhere off the data path. */
const SHAPE_OPS = new Set([
  'Constant',
  'Shape',
  'Gather',
  'Unsqueeze',
  'Squeeze',
  'Concat',
  'Slice',
  'Reshape',
  'Identity',
  'ConstantOfShape',
  'Cast',
  'Mul',
  'Add',
  'Sub',
  'Div',
  'Expand',
  'Transpose',
]);

const BIG = 2 ** 31 - 1;

function nodeName(node: INodeProto, index: number): string {
  return node.name || `${node.opType ?? '?'}#${index}${node.output?.[0] ? ` (${node.output[0]})` : ''}`;
}

/** Normalises a possibly negative axis against a rank. */
function axisOf(axis: number, rank: number, op: string, node: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new ModelInvalidError(`node '${node}' (${op}): axis ${axis} out of range`);
  return a;
}

class Walker {
  private readonly values = new Map<string, Value>();
  /** The input axis that the first recurrent node reads as time, and the one it reads as batch. */
  private timeLabel?: string;
  private batchLabel?: string;
  private readonly recurrentNodes: string[] = [];
  private inputName = '';

  constructor(
    private readonly graph: IGraphProto,
    private readonly opset: number,
  ) {}

  run(): WalkResult {
    const initializers = new Set<string>();
    for (const t of this.graph.initializer ?? []) {
      const tensor = decodeTensor(t);
      initializers.add(tensor.name);
      this.values.set(tensor.name, { kind: 'const', t: tensor });
    }
    const inputs = (this.graph.input ?? []).filter((i) => i.name && !initializers.has(i.name));
    if (inputs.length === 0) throw new ModelInvalidError('the ONNX graph has no input');
    inputs.forEach((input, k) => {
      const name = input.name!;
      if (k > 0) {
        this.values.set(name, {
          kind: 'poison',
          error: new ModelInvalidError(
            `graph input '${name}' is used, but cellstream's ONNX importer takes graphs with one input ('${inputs[0].name}')`,
          ),
        });
        return;
      }
      this.inputName = name;
      const dims = input.type?.tensorType?.shape?.dim ?? [];
      if (dims.length < 2) {
        throw new ModelInvalidError(`graph input '${name}' should have a time and a feature axis`);
      }
      const axes: Axis[] = dims.map((d, i) => {
        const value = toNumber(d.dimValue);
        const size =
          d.dimValue !== null && d.dimValue !== undefined && value > 0
            ? num(value)
            : symbol(d.dimParam || `${name}:${i}`);
        return { label: i === dims.length - 1 ? FEATURES : `in${i}`, size };
      });
      const net: Net = { layers: [], recurrentNodes: [], head: [], lastStep: false };
      this.values.set(name, { kind: 'data', axes, net });
    });

    const nodes = this.graph.node ?? [];
    nodes.forEach((node, index) => {
      this.visit(node, nodeName(node, index));
    });

    const outName = this.graph.output?.[0]?.name;
    if (!outName) throw new ModelInvalidError('the ONNX graph has no output');
    const out = this.values.get(outName);
    if (out?.kind === 'poison') throw out.error;
    if (out?.kind !== 'data' || out.net.layers.length === 0) {
      throw new ModelInvalidError(
        `graph output '${outName}' is not computed from the input through LSTM/GRU nodes`,
      );
    }
    if (out.axes.at(-1)?.label !== FEATURES) {
      throw new ModelInvalidError(`graph output '${outName}' does not end in its feature axis`);
    }
    const missing = this.recurrentNodes.filter((n) => !out.net.recurrentNodes.includes(n));
    if (missing.length > 0) {
      throw new ModelInvalidError(
        `recurrent node(s) ${missing.map((n) => `'${n}'`).join(', ')} do not feed graph output '${outName}'`,
      );
    }
    return { inputName: this.inputName, layers: out.net.layers, head: out.net.head };
  }

  private get(name: string | undefined | null): Value | undefined {
    if (!name) return undefined;
    const v = this.values.get(name);
    if (!v) throw new ModelInvalidError(`value '${name}' is used before it is computed (graph not sorted?)`);
    return v;
  }

  private set(node: INodeProto, ...outs: Value[]): void {
    outs.forEach((v, i) => {
      const name = node.output?.[i];
      if (name) this.values.set(name, v);
    });
  }

  private visit(node: INodeProto, name: string): void {
    const op = node.opType ?? '';
    if (node.domain && node.domain !== 'ai.onnx') throw new UnsupportedOpError(`${node.domain}.${op}`, name);
    const attrs = new Attributes(node);
    if (op === 'LSTM' || op === 'GRU') {
      this.recurrent(node, name, op, attrs);
      return;
    }
    const inputs = (node.input ?? []).map((i) => this.get(i));
    const data = inputs.filter((v): v is Extract<Value, { kind: 'data' }> => v?.kind === 'data');
    if (data.length > 1) {
      throw new UnsupportedOpError(op, name, 'it combines two tensors computed from the input');
    }
    if (data.length === 1) {
      this.set(node, this.dataOp(node, name, op, attrs, inputs, data[0]));
      return;
    }
    if (!SHAPE_OPS.has(op)) throw new UnsupportedOpError(op, name);
    const poison = inputs.find((v) => v?.kind === 'poison');
    if (poison?.kind === 'poison' && op !== 'Shape') throw poison.error;
    this.set(node, this.shapeOp(node, name, op, attrs, inputs));
  }

  // --- recurrent nodes -------------------------------------------------------------------------

  private recurrent(node: INodeProto, name: string, op: 'LSTM' | 'GRU', attrs: Attributes): void {
    const ins = node.input ?? [];
    const x = this.get(ins[0]);
    if (x?.kind === 'poison') throw x.error;
    if (x?.kind !== 'data') {
      throw new ModelInvalidError(`input X of node '${name}' is not computed from the graph input`);
    }
    if (x.net.head.length > 0) {
      throw new UnsupportedOpError(op, name, 'dense layers between recurrent layers are not supported');
    }
    const weight = (i: number, what: string): ConstTensor | undefined => {
      const v = this.get(ins[i]);
      if (v === undefined) return undefined;
      if (v.kind !== 'const' || !v.t.floats) {
        throw new ModelInvalidError(`${what} '${ins[i]}' of node '${name}' is not a constant float tensor`);
      }
      return v.t;
    };
    const W = weight(1, 'W');
    const R = weight(2, 'R');
    if (!W || !R) throw new ModelInvalidError(`node '${name}' lacks its W or R input`);
    if (ins[4]) {
      throw new UnsupportedOpError(
        op,
        name,
        `sequence_lens '${ins[4]}' is given; streaming has no sequence end`,
      );
    }
    const states = op === 'LSTM' ? ['initial_h', 'initial_c'] : ['initial_h'];
    states.forEach((what, k) => {
      const v = this.get(ins[5 + k]);
      if (v !== undefined && !isZero(v)) {
        throw new ModelInvalidError(
          `node '${name}': ${what} '${ins[5 + k]}' is not zero; cellstream starts every key's sequence ` +
            'from a zero state (export without an initial state, or with zeros)',
        );
      }
    });
    const w: RecurrentWeights = {
      W,
      R,
      ...(weight(3, 'B') ? { B: weight(3, 'B')! } : {}),
      ...(op === 'LSTM' && weight(7, 'P') ? { P: weight(7, 'P')! } : {}),
    };
    const layer = op === 'LSTM' ? lstmLayer(attrs, w, name) : gruLayer(attrs, w, name);

    const layout = attrs.int('layout', 0);
    if (x.axes.length !== 3) {
      throw new ModelInvalidError(`input X of node '${name}' has rank ${x.axes.length}, expected 3`);
    }
    const [seq, batch] = layout === 0 ? [x.axes[0], x.axes[1]] : [x.axes[1], x.axes[0]];
    const feat = x.axes[2];
    if (feat.label !== FEATURES) {
      throw new UnsupportedOpError(op, name, 'its input X does not carry the features on its last axis');
    }
    if (this.timeLabel === undefined) {
      if (!seq.label.startsWith('in') || batch.label === seq.label) {
        throw new UnsupportedOpError(op, name, "its time axis is not one of the graph input's axes");
      }
      this.timeLabel = seq.label;
      if (batch.label.startsWith('in')) this.batchLabel = batch.label;
    } else if (seq.label !== this.timeLabel) {
      throw new UnsupportedOpError(op, name, 'its time axis is not the time axis of the layer before it');
    }
    if (isNum(feat.size) && feat.size.c !== layer.inputSize) {
      throw new ModelInvalidError(
        `node '${name}': W '${W.name}' takes ${layer.inputSize} inputs but X has ${feat.size.c} features`,
      );
    }
    const prev = x.net.layers.at(-1);
    if (prev && prev.hiddenSize !== layer.inputSize) {
      throw new ModelInvalidError(
        `node '${name}': W '${W.name}' takes ${layer.inputSize} inputs but the layer before has ${prev.hiddenSize} units`,
      );
    }
    this.recurrentNodes.push(name);
    const net: Net = {
      layers: [...x.net.layers, layer],
      recurrentNodes: [...x.net.recurrentNodes, name],
      head: [],
      lastStep: false,
    };
    const H: Axis = { label: FEATURES, size: num(layer.hiddenSize) };
    const dir = unitAxis();
    const seqAxis: Axis = { label: this.timeLabel, size: seq.size };
    const y: Axis[] = layout === 0 ? [seqAxis, dir, batch, H] : [batch, seqAxis, dir, H];
    const yh: Axis[] = layout === 0 ? [dir, batch, H] : [batch, dir, H];
    const outs: Value[] = [
      { kind: 'data', axes: y, net },
      { kind: 'data', axes: yh, net: { ...net, lastStep: true } },
    ];
    if (op === 'LSTM') {
      outs.push({
        kind: 'poison',
        error: new UnsupportedOpError(
          op,
          name,
          'its cell-state output Y_c is used; only Y and Y_h can feed the head',
        ),
      });
    }
    this.set(node, ...outs);
  }

  // --- ops on the data path ----------------------------------------------------------------------

  private dataOp(
    node: INodeProto,
    name: string,
    op: string,
    attrs: Attributes,
    inputs: (Value | undefined)[],
    x: Extract<Value, { kind: 'data' }>,
  ): Value {
    const dataAt = inputs.indexOf(x);
    const axes = x.axes;
    const rank = axes.length;
    const width = (): number => {
      const f = axes.at(-1)!;
      if (f.label !== FEATURES || !isNum(f.size)) {
        throw new UnsupportedOpError(op, name, 'its input does not end in a known feature axis');
      }
      return f.size.c;
    };
    const emit = (newAxes: readonly Axis[], net: Net = x.net): Value => ({
      kind: 'data',
      axes: newAxes,
      net,
    });
    const withHead = (head: DenseLayer[]): Net => ({ ...x.net, head });
    const requireAfterRecurrent = (): void => {
      if (x.net.layers.length === 0) {
        throw new UnsupportedOpError(op, name, 'it is applied to the input before the recurrent layers');
      }
    };
    if (dataAt !== 0 && op !== 'Add')
      throw new UnsupportedOpError(op, name, 'the input-derived tensor is not its first operand');

    switch (op) {
      case 'Identity':
        return emit(axes);
      case 'Cast': {
        const to = attrs.int('to', 1);
        if (to !== 1) throw new UnsupportedOpError(op, name, `it casts to ONNX type ${to}, not float`);
        return emit(axes);
      }
      case 'Shape': {
        const [start, end] = [attrs.int('start', 0), attrs.int('end', rank)];
        const sizes = axes.map((a) => a.size);
        return { kind: 'ints', scalar: false, v: sizes.slice(start, end < 0 ? end + rank : end) };
      }
      case 'Transpose': {
        const perm = attrs.ints('perm') ?? axes.map((_, i) => rank - 1 - i);
        return emit(perm.map((p) => axes[p]));
      }
      case 'Squeeze': {
        const list = this.axesArg(node, attrs, inputs, 1, name, op);
        const drop = new Set(
          (list ?? axes.flatMap((a, i) => (isOne(a.size) ? [i] : []))).map((a) => axisOf(a, rank, op, name)),
        );
        for (const i of drop) {
          const a = axes[i];
          if (!isUnit(a) && a.label !== this.batchLabel) {
            throw new UnsupportedOpError(op, name, `it removes axis ${i}, which is not of size 1`);
          }
        }
        return emit(axes.filter((_, i) => !drop.has(i)));
      }
      case 'Unsqueeze': {
        const list = this.axesArg(node, attrs, inputs, 1, name, op);
        if (!list) throw new ModelInvalidError(`node '${name}' (Unsqueeze) has no axes`);
        const outRank = rank + list.length;
        const at = new Set(list.map((a) => axisOf(a, outRank, op, name)));
        const out: Axis[] = [];
        let k = 0;
        for (let i = 0; i < outRank; i++) out.push(at.has(i) ? unitAxis() : axes[k++]);
        return emit(out);
      }
      case 'Reshape':
        return emit(this.reshape(axes, inputs[1], attrs.int('allowzero', 0) !== 0, name));
      case 'Gather': {
        const idx = numbersOf(inputs[1]);
        const scalar = intsOf(inputs[1])?.scalar ?? false;
        if (idx?.length !== 1) {
          throw new UnsupportedOpError(op, name, 'its indices are not one constant');
        }
        const a = axisOf(attrs.int('axis', 0), rank, op, name);
        const last = this.selectsLast(axes[a], idx[0], idx[0] === -1 ? BIG : idx[0] + 1);
        if (last === 'no') {
          throw new UnsupportedOpError(op, name, 'it selects something other than the last time step');
        }
        const net = last === 'time' ? { ...x.net, lastStep: true } : x.net;
        return emit(
          scalar ? axes.filter((_, i) => i !== a) : axes.map((ax, i) => (i === a ? unitAxis() : ax)),
          net,
        );
      }
      case 'Slice':
        return this.slice(node, name, attrs, inputs, x);
      case 'MatMul': {
        requireAfterRecurrent();
        const w = this.constFloats(inputs[1], op, name, 'weight');
        const k = width();
        if (w.dims.length !== 2 || w.dims[0] !== k) {
          throw new ModelInvalidError(
            `node '${name}' (MatMul): weight '${w.t.name}' has shape [${w.dims.join(', ')}], expected [${k}, out]`,
          );
        }
        const n = w.dims[1];
        const Wt = transpose2(w.data, k, n);
        return emit(
          [...axes.slice(0, -1), { label: FEATURES, size: num(n) }],
          withHead(appendLinear(x.net.head, Wt, k, n)),
        );
      }
      case 'Add': {
        requireAfterRecurrent();
        const other = inputs[1 - dataAt];
        if (isZero(other)) return emit(axes);
        const n = width();
        const bias = this.broadcastBias(other, n, op, name);
        return emit(axes, withHead(addBias(x.net.head, bias, n)));
      }
      case 'Gemm': {
        requireAfterRecurrent();
        if (rank !== 2) throw new UnsupportedOpError(op, name, `its input has rank ${rank}, Gemm takes 2`);
        if (attrs.int('transA', 0) !== 0) {
          throw new UnsupportedOpError(op, name, 'transA=1 would mix time steps');
        }
        const k = width();
        const b = this.constFloats(inputs[1], op, name, 'weight');
        const transB = attrs.int('transB', 0) !== 0;
        const n = transB ? b.dims[0] : b.dims[1];
        if (b.dims.length !== 2 || (transB ? b.dims[1] : b.dims[0]) !== k) {
          throw new ModelInvalidError(
            `node '${name}' (Gemm): weight '${b.t.name}' has shape [${b.dims.join(', ')}], which does not take ${k} inputs`,
          );
        }
        const alpha = attrs.float('alpha') ?? 1;
        const beta = attrs.float('beta') ?? 1;
        const W = (transB ? b.data.slice() : transpose2(b.data, k, n)).map((v) => v * alpha);
        let head = appendLinear(x.net.head, W, k, n);
        if (inputs[2] !== undefined && beta !== 0) {
          const c = this.broadcastBias(inputs[2], n, op, name);
          head = addBias(
            head,
            c.map((v) => v * beta),
            n,
          );
        }
        return emit([axes[0], { label: FEATURES, size: num(n) }], withHead(head));
      }
      case 'Relu':
      case 'Sigmoid':
      case 'Tanh':
      case 'Softmax': {
        requireAfterRecurrent();
        if (op === 'Softmax') this.checkSoftmaxAxis(attrs, axes, name);
        const act: HeadActivation = { kind: op.toLowerCase() as 'relu' | 'sigmoid' | 'tanh' | 'softmax' };
        return emit(axes, withHead(applyActivation(x.net.head, act, width())));
      }
      default:
        throw new UnsupportedOpError(op, name);
    }
  }

  /** Reads an axes list from the attribute (older opsets) or the given input (opset 13+). */
  private axesArg(
    node: INodeProto,
    attrs: Attributes,
    inputs: (Value | undefined)[],
    at: number,
    name: string,
    op: string,
  ): number[] | undefined {
    const fromAttr = attrs.ints('axes');
    if (fromAttr) return fromAttr;
    if (!node.input?.[at]) return undefined;
    const list = numbersOf(inputs[at]);
    if (!list) throw new UnsupportedOpError(op, name, 'its axes are not constant');
    return list;
  }

  /**
   * Whether taking [start, end) of an axis is harmless: 'unit' on an axis of one element, 'time'
   * when it keeps only the last time step after the recurrent layers, else 'no'.
   */
  private selectsLast(axis: Axis, start: number, end: number): 'unit' | 'time' | 'no' {
    if (isUnit(axis)) return (start === 0 || start === -1) && end >= 1 ? 'unit' : 'no';
    if (axis.label !== this.timeLabel || this.timeLabel === undefined) return 'no';
    if (start === -1 && end >= BIG) return 'time';
    if (isNum(axis.size) && start === axis.size.c - 1 && end >= axis.size.c) return 'time';
    return 'no';
  }

  private slice(
    node: INodeProto,
    name: string,
    attrs: Attributes,
    inputs: (Value | undefined)[],
    x: Extract<Value, { kind: 'data' }>,
  ): Value {
    const rank = x.axes.length;
    const arg = (i: number, attr: string): number[] | undefined => {
      const a = attrs.ints(attr);
      if (a) return a;
      if (!node.input?.[i]) return undefined;
      const v = numbersOf(inputs[i]);
      if (!v) throw new UnsupportedOpError('Slice', name, `its ${attr} are not constant`);
      return v;
    };
    const starts = arg(1, 'starts') ?? [];
    const ends = arg(2, 'ends') ?? [];
    const axesList = arg(3, 'axes') ?? starts.map((_, i) => i);
    const steps = arg(4, 'steps') ?? starts.map(() => 1);
    let net = x.net;
    const out = [...x.axes];
    axesList.forEach((ax, i) => {
      const a = axisOf(ax, rank, 'Slice', name);
      const axis = x.axes[a];
      const whole =
        starts[i] === 0 && steps[i] === 1 && (ends[i] >= BIG || sameSize(axis.size, num(ends[i])));
      if (whole) return;
      const last = steps[i] === 1 ? this.selectsLast(axis, starts[i], ends[i]) : 'no';
      if (last === 'no') {
        throw new UnsupportedOpError('Slice', name, 'it cuts an axis other than to the last time step');
      }
      if (last === 'time') net = { ...net, lastStep: true };
      out[a] = unitAxis();
    });
    return { kind: 'data', axes: out, net };
  }

  private checkSoftmaxAxis(attrs: Attributes, axes: readonly Axis[], name: string): void {
    const rank = axes.length;
    const axis = axisOf(attrs.int('axis', this.opset >= 13 ? -1 : 1), rank, 'Softmax', name);
    // Before opset 13 Softmax flattens the axes from `axis` on; harmless when those before the
    // last hold one element per key.
    const between = axes.slice(axis, -1);
    const ok =
      this.opset >= 13 ? axis === rank - 1 : between.every((a) => isUnit(a) || a.label === this.batchLabel);
    if (!ok) throw new UnsupportedOpError('Softmax', name, 'it is not taken over the feature axis');
  }

  /**
   * Follows a Reshape of a data tensor. Input and output dimensions are matched in order, ignoring
   * ones; each output dimension must be a product of consecutive input dimensions whose contents
   * may be merged: the feature axis alone, or time with batch (one key is one batch row).
   */
  private reshape(
    axes: readonly Axis[],
    target: Value | undefined,
    allowZero: boolean,
    name: string,
  ): Axis[] {
    const t = intsOf(target);
    if (!t) throw new UnsupportedOpError('Reshape', name, 'its target shape cannot be determined');
    const dims: Size[] = t.v.map((s, i) =>
      isNum(s) && s.c === 0 && !allowZero ? (axes[i]?.size ?? null) : s,
    );
    const unknown = dims.flatMap((s, i) => (s === null || (isNum(s) && s.c === -1) ? [i] : []));
    if (unknown.length > 1)
      throw new UnsupportedOpError('Reshape', name, 'its target shape cannot be determined');
    if (unknown.length === 1) {
      const known = product(dims.filter((_, i) => i !== unknown[0]));
      dims[unknown[0]] = div(product(axes.map((a) => a.size)), known);
      if (dims[unknown[0]] === null) {
        throw new UnsupportedOpError('Reshape', name, 'its target shape cannot be determined');
      }
    }
    const fail = (): never => {
      throw new UnsupportedOpError(
        'Reshape',
        name,
        `it reshapes [${axes.map((a) => show(a.size)).join(', ')}] to [${dims.map(show).join(', ')}], mixing time steps or features`,
      );
    };
    const out: Axis[] = dims.map((size) => ({ label: UNIT, size }));
    let inAxes = [...axes];
    let outIdx = dims.map((_, i) => i);
    // The feature axis keeps its label even when it has one element (a single-feature input).
    if (axes.at(-1)?.label === FEATURES && sameSize(dims.at(-1)!, axes.at(-1)!.size)) {
      out[dims.length - 1] = axes.at(-1)!;
      inAxes = inAxes.slice(0, -1);
      outIdx = outIdx.slice(0, -1);
    }
    const from = inAxes.filter((a) => !isOne(a.size));
    let k = 0;
    for (const i of outIdx) {
      const d = dims[i];
      if (isOne(d)) continue;
      let acc: Size = num(1);
      const labels = new Set<string>();
      while (!sameSize(acc, d)) {
        if (k >= from.length || div(d, acc) === null) fail();
        acc = mul(acc, from[k].size);
        if (div(d, acc) === null) fail();
        if (from[k].label !== UNIT) labels.add(from[k].label);
        k++;
      }
      out[i] = { label: this.mergeLabels(labels) ?? fail(), size: d };
    }
    if (k !== from.length) fail();
    return out;
  }

  private mergeLabels(labels: Set<string>): string | undefined {
    if (labels.size === 0) return UNIT;
    if (labels.size === 1) return [...labels][0];
    if (this.timeLabel && labels.has(this.timeLabel)) {
      const rest = [...labels].filter((l) => l !== this.timeLabel);
      if (rest.every((l) => l === this.batchLabel)) return this.timeLabel;
    }
    return undefined;
  }

  private constFloats(v: Value | undefined, op: string, name: string, what: string) {
    if (v?.kind !== 'const' || !v.t.floats) {
      throw new UnsupportedOpError(op, name, `its ${what} is not a constant float tensor`);
    }
    return { t: v.t, dims: v.t.dims, data: v.t.floats };
  }

  /** A bias that broadcasts along the feature axis only: `[n]`, `[1, …, n]` or a scalar. */
  private broadcastBias(v: Value | undefined, n: number, op: string, name: string): Float32Array {
    const c = this.constFloats(v, op, name, 'other operand');
    const count = c.data.length;
    const last = c.dims.at(-1) ?? 1;
    if (count === 1) return new Float32Array(n).fill(c.data[0]);
    if (count === n && last === n) return c.data.slice();
    throw new UnsupportedOpError(
      op,
      name,
      `operand '${c.t.name}' of shape [${c.dims.join(', ')}] does not broadcast along the ${n} features only`,
    );
  }

  // --- shape-only ops ------------------------------------------------------------------------------

  private shapeOp(
    node: INodeProto,
    name: string,
    op: string,
    attrs: Attributes,
    inputs: (Value | undefined)[],
  ): Value {
    const x = inputs[0];
    const passZeros = (): Value =>
      isZero(x) ? { kind: 'zeros' } : { kind: 'opaque', why: `${op} '${name}' was not evaluated` };
    switch (op) {
      case 'Constant': {
        const t = attrs.tensor('value');
        if (t) return { kind: 'const', t };
        const i =
          attrs.ints('value_ints') ?? (attrs.has('value_int') ? [attrs.int('value_int', 0)] : undefined);
        if (i) return { kind: 'ints', scalar: attrs.has('value_int'), v: i.map(num) };
        const f =
          attrs.floats('value_floats') ??
          (attrs.float('value_float') !== undefined ? [attrs.float('value_float')!] : undefined);
        if (f) {
          const dims = attrs.has('value_float') ? [] : [f.length];
          return { kind: 'const', t: { name: node.output?.[0] ?? name, dims, floats: Float32Array.from(f) } };
        }
        return { kind: 'opaque', why: `Constant '${name}' of an unsupported kind` };
      }
      case 'Identity':
      case 'Cast':
        return x ?? { kind: 'opaque', why: `${op} '${name}' has no input` };
      case 'Shape': {
        if (x?.kind === 'const') {
          const dims = x.t.dims.map(num);
          const [start, end] = [attrs.int('start', 0), attrs.int('end', dims.length)];
          return { kind: 'ints', scalar: false, v: dims.slice(start, end < 0 ? end + dims.length : end) };
        }
        return { kind: 'opaque', why: `the shape of a computed tensor ('${name}')` };
      }
      case 'ConstantOfShape': {
        const value = attrs.tensor('value');
        const zero = !value || (value.floats ?? value.ints ?? []).every((v) => v === 0);
        return zero ? { kind: 'zeros' } : { kind: 'opaque', why: `a non-zero fill ('${name}')` };
      }
      case 'Gather': {
        const src = intsOf(x);
        const idx = intsOf(inputs[1]);
        const at = numbersOf(inputs[1]);
        if (src && !src.scalar && idx && at && attrs.int('axis', 0) === 0) {
          const v = at.map((i) => src.v[i < 0 ? i + src.v.length : i] ?? null);
          return { kind: 'ints', scalar: idx.scalar, v };
        }
        return passZeros();
      }
      case 'Unsqueeze':
      case 'Squeeze':
      case 'Reshape': {
        const src = intsOf(x);
        if (src && x?.kind === 'ints') {
          // Scalar ↔ one-element vector, the only reshapes exporters apply to shape values.
          return { kind: 'ints', scalar: op === 'Squeeze' && src.v.length === 1, v: src.v };
        }
        if (x?.kind === 'const') return reshapeConst(x.t, op, attrs, inputs, name);
        return passZeros();
      }
      case 'Concat': {
        const parts = inputs.map(intsOf);
        if (parts.every((p) => p !== undefined)) {
          return { kind: 'ints', scalar: false, v: parts.flatMap((p) => p!.v) };
        }
        return inputs.every(isZero) ? { kind: 'zeros' } : passZeros();
      }
      case 'Slice': {
        const src = intsOf(x);
        const starts = numbersOf(inputs[1]) ?? attrs.ints('starts');
        const ends = numbersOf(inputs[2]) ?? attrs.ints('ends');
        const steps = numbersOf(inputs[4]) ?? [1];
        if (src && !src.scalar && starts?.length === 1 && ends?.length === 1 && steps[0] === 1) {
          const n = src.v.length;
          const clamp = (i: number) => Math.max(0, Math.min(n, i < 0 ? i + n : i));
          return { kind: 'ints', scalar: false, v: src.v.slice(clamp(starts[0]), clamp(ends[0])) };
        }
        return passZeros();
      }
      case 'Mul':
      case 'Add':
      case 'Sub':
      case 'Div': {
        const a = intsOf(x);
        const b = intsOf(inputs[1]);
        if (a && b && (a.v.length === b.v.length || a.v.length === 1 || b.v.length === 1)) {
          const n = Math.max(a.v.length, b.v.length);
          const at = (l: Size[], i: number) => (l.length === 1 ? l[0] : l[i]);
          const f =
            op === 'Mul' ? mul : op === 'Div' ? div : (p: Size, q: Size) => add(p, q, op === 'Add' ? 1 : -1);
          const v = Array.from({ length: n }, (_, i) => f(at(a.v, i), at(b.v, i)));
          return { kind: 'ints', scalar: a.scalar && b.scalar, v };
        }
        if (op === 'Mul' && (isZero(x) || isZero(inputs[1]))) return { kind: 'zeros' };
        return { kind: 'opaque', why: `${op} '${name}' was not evaluated` };
      }
      case 'Expand':
        return passZeros();
      case 'Transpose':
        if (x?.kind === 'const' && x.t.floats && x.t.dims.length === 2 && !attrs.ints('perm')?.[0]) {
          const [r, c] = x.t.dims;
          return { kind: 'const', t: { name: x.t.name, dims: [c, r], floats: transpose2(x.t.floats, r, c) } };
        }
        return passZeros();
      default:
        throw new UnsupportedOpError(op, name);
    }
  }
}

function transpose2(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  return out;
}

/** Squeeze/Unsqueeze/Reshape of a constant tensor: same data, new dimensions. */
function reshapeConst(
  t: ConstTensor,
  op: string,
  attrs: Attributes,
  inputs: (Value | undefined)[],
  name: string,
): Value {
  const arg = attrs.ints('axes') ?? numbersOf(inputs[1]);
  let dims: number[];
  if (op === 'Reshape') {
    if (!arg) return { kind: 'opaque', why: `Reshape '${name}' of a constant to an unknown shape` };
    const count = t.dims.reduce((a, b) => a * b, 1);
    dims = arg.map((d, i) => (d === 0 ? t.dims[i] : d));
    const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    dims = dims.map((d) => (d === -1 ? count / known : d));
  } else if (op === 'Squeeze') {
    const drop = new Set(
      (arg ?? t.dims.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => (a < 0 ? a + t.dims.length : a)),
    );
    dims = t.dims.filter((_, i) => !drop.has(i));
  } else {
    if (!arg) return { kind: 'opaque', why: `Unsqueeze '${name}' without axes` };
    const rank = t.dims.length + arg.length;
    const at = new Set(arg.map((a) => (a < 0 ? a + rank : a)));
    const rest = [...t.dims];
    dims = Array.from({ length: rank }, (_, i) => (at.has(i) ? 1 : rest.shift()!));
  }
  return { kind: 'const', t: { ...t, dims } };
}

/** Walks an ONNX graph and extracts the streaming network feeding its first output. */
export function walkGraph(graph: IGraphProto, opset: number): WalkResult {
  return new Walker(graph, opset).run();
}
