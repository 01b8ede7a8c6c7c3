import { ModelInvalidError, NotStreamableError } from '../../errors.js';
import type { GruLayer, LstmLayer } from '../../model/types.js';
import { onnxActivations } from './activations.js';
import type { Attributes } from './attributes.js';
import type { ConstTensor } from './tensors.js';

/** The constant inputs of an ONNX LSTM/GRU node. */
export interface RecurrentWeights {
  readonly W: ConstTensor;
  readonly R: ConstTensor;
  readonly B?: ConstTensor;
  readonly P?: ConstTensor;
}

/** ONNX LSTM stores gate blocks as i, o, f, c; canonical is i, f, g(=c), o. */
export const ONNX_LSTM_TO_CANONICAL = [0, 2, 3, 1] as const;

/**
 * Rebuilds a `[gates·H, cols]` row-major matrix with its gate blocks in a new order:
 * block k of the result is block `order[k]` of `src`.
 */
export function reorderGates(
  src: Float32Array,
  hidden: number,
  cols: number,
  order: readonly number[],
): Float32Array {
  const block = hidden * cols;
  const out = new Float32Array(order.length * block);
  order.forEach((from, to) => {
    out.set(src.subarray(from * block, (from + 1) * block), to * block);
  });
  return out;
}

/** Refuses directions that need the future of the sequence. */
export function checkForward(attrs: Attributes, node: string): void {
  const direction = attrs.string('direction', 'forward');
  if (direction !== 'forward') {
    throw new NotStreamableError(
      node,
      direction === 'bidirectional'
        ? 'it is bidirectional (its backward half reads the sequence from its end)'
        : `its direction is '${direction}' (it reads the sequence from its end)`,
    );
  }
}

function floatsOf(t: ConstTensor, node: string): Float32Array {
  if (!t.floats) throw new ModelInvalidError(`tensor '${t.name}' of node '${node}' is not a float tensor`);
  return t.floats;
}

function expectDims(t: ConstTensor, want: readonly number[], what: string, node: string): void {
  if (t.dims.length !== want.length || t.dims.some((d, i) => d !== want[i])) {
    throw new ModelInvalidError(
      `node '${node}': ${what} '${t.name}' has shape [${t.dims.join(', ')}], expected [${want.join(', ')}]`,
    );
  }
}

/** Hidden and input sizes from W `[1, gates·H, I]`, checked against the `hidden_size` attribute. */
function sizes(attrs: Attributes, w: RecurrentWeights, gates: number, node: string): [number, number] {
  const { W } = w;
  if (W.dims.length !== 3 || W.dims[0] !== 1 || W.dims[1] % gates !== 0) {
    throw new ModelInvalidError(
      `node '${node}': W '${W.name}' has shape [${W.dims.join(', ')}], expected [1, ${gates}·hidden, input]`,
    );
  }
  const H = W.dims[1] / gates;
  const attrH = attrs.int('hidden_size', H);
  if (attrH !== H) {
    throw new ModelInvalidError(
      `node '${node}': W '${W.name}' holds ${H} hidden units but hidden_size is ${attrH}`,
    );
  }
  return [H, W.dims[2]];
}

function activationList(attrs: Attributes, defaults: string[], node: string) {
  const names = attrs.strings('activations') ?? defaults;
  if (names.length !== defaults.length) {
    throw new ModelInvalidError(
      `node '${node}' lists ${names.length} activations; a forward ${defaults.length === 3 ? 'LSTM' : 'GRU'} takes ${defaults.length}`,
    );
  }
  return onnxActivations(
    names,
    attrs.floats('activation_alpha') ?? [],
    attrs.floats('activation_beta') ?? [],
    node,
  );
}

function clipOf(attrs: Attributes): number | undefined {
  const clip = attrs.float('clip');
  return clip === undefined ? undefined : clip;
}

/** Converts an ONNX LSTM node (forward) to the canonical layer: gate reorder, summed bias, peepholes. */
export function lstmLayer(attrs: Attributes, w: RecurrentWeights, node: string): LstmLayer {
  checkForward(attrs, node);
  const [H, I] = sizes(attrs, w, 4, node);
  expectDims(w.R, [1, 4 * H, H], 'R', node);
  const W = reorderGates(floatsOf(w.W, node), H, I, ONNX_LSTM_TO_CANONICAL);
  const R = reorderGates(floatsOf(w.R, node), H, H, ONNX_LSTM_TO_CANONICAL);
  const sum = new Float32Array(4 * H);
  if (w.B) {
    expectDims(w.B, [1, 8 * H], 'B', node);
    const B = floatsOf(w.B, node);
    for (let k = 0; k < 4 * H; k++) sum[k] = B[k] + B[4 * H + k];
  }
  const b = reorderGates(sum, H, 1, ONNX_LSTM_TO_CANONICAL);
  let peephole: LstmLayer['peephole'];
  if (w.P) {
    expectDims(w.P, [1, 3 * H], 'P', node);
    const P = floatsOf(w.P, node);
    // ONNX P is [i, o, f]; an all-zero P is what exporters write for "no peepholes".
    if (P.some((v) => v !== 0)) {
      peephole = { i: P.slice(0, H), o: P.slice(H, 2 * H), f: P.slice(2 * H, 3 * H) };
    }
  }
  const [f, g, h] = activationList(attrs, ['Sigmoid', 'Tanh', 'Tanh'], node);
  const clip = clipOf(attrs);
  return {
    kind: 'lstm',
    inputSize: I,
    hiddenSize: H,
    W,
    R,
    b,
    ...(peephole ? { peephole } : {}),
    inputForget: attrs.int('input_forget', 0) !== 0,
    ...(clip === undefined ? {} : { clip }),
    activations: { f, g, h },
  };
}

/** Converts an ONNX GRU node (forward) to the canonical layer: z, r, h order kept, biases apart. */
export function gruLayer(attrs: Attributes, w: RecurrentWeights, node: string): GruLayer {
  checkForward(attrs, node);
  const [H, I] = sizes(attrs, w, 3, node);
  expectDims(w.R, [1, 3 * H, H], 'R', node);
  let bW = new Float32Array(3 * H);
  let bR = new Float32Array(3 * H);
  if (w.B) {
    expectDims(w.B, [1, 6 * H], 'B', node);
    const B = floatsOf(w.B, node);
    bW = B.slice(0, 3 * H);
    bR = B.slice(3 * H, 6 * H);
  }
  const [f, g] = activationList(attrs, ['Sigmoid', 'Tanh'], node);
  const clip = clipOf(attrs);
  return {
    kind: 'gru',
    inputSize: I,
    hiddenSize: H,
    W: floatsOf(w.W, node).slice(),
    R: floatsOf(w.R, node).slice(),
    bW,
    bR,
    linearBeforeReset: attrs.int('linear_before_reset', 0) !== 0,
    ...(clip === undefined ? {} : { clip }),
    activations: { f, g },
  };
}
