import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** Our gates i, f, g, o → ONNX's i, o, f, c: the source block for each ONNX block. */
const ONNX_FROM_OURS = [0, 3, 1, 2];

function reorderRows(m, H, cols) {
  const out = new Float32Array(m.length);
  ONNX_FROM_OURS.forEach((src, dst) => {
    out.set(m.subarray(src * H * cols, (src + 1) * H * cols), dst * H * cols);
  });
  return out;
}

function tensor(name, dims, data) {
  return onnx.TensorProto.create({
    name,
    dims,
    dataType: onnx.TensorProto.DataType.FLOAT,
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  });
}

function valueInfo(name, dims) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
}

/**
 * The bench model as one ONNX LSTM node (opset 14) with the batch dimension left free, and the
 * recurrent state passed in and out (initial_h/c → Y_h/Y_c) so a caller can step it one event at
 * a time, as it would carry state across `run` calls.
 */
export function onnxLstmBytes(model) {
  const l = model.branches[0].layers[0];
  const { inputSize: I, hiddenSize: H } = l;
  const bias = new Float32Array(8 * H);
  bias.set(reorderRows(l.b, H, 1), 0); // Wb; Rb stays zero, the canonical bias is already summed
  const node = onnx.NodeProto.create({
    opType: 'LSTM',
    input: ['X', 'W', 'R', 'B', '', 'initial_h', 'initial_c'],
    output: ['', 'Y_h', 'Y_c'],
    attribute: [{ name: 'hidden_size', type: onnx.AttributeProto.AttributeType.INT, i: H }],
  });
  const graph = onnx.GraphProto.create({
    name: 'bench',
    node: [node],
    initializer: [
      tensor('W', [1, 4 * H, I], reorderRows(l.W, H, I)),
      tensor('R', [1, 4 * H, H], reorderRows(l.R, H, H)),
      tensor('B', [1, 8 * H], bias),
    ],
    input: [
      valueInfo('X', [1, 'batch', I]),
      valueInfo('initial_h', [1, 'batch', H]),
      valueInfo('initial_c', [1, 'batch', H]),
    ],
    output: [valueInfo('Y_h', [1, 'batch', H]), valueInfo('Y_c', [1, 'batch', H])],
  });
  const proto = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'cellstream-bench',
    opsetImport: [{ domain: '', version: 14 }],
    graph,
  });
  return onnx.ModelProto.encode(proto).finish();
}
