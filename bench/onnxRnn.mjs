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
 * The bench model (stacked LSTM or GRU layers of one branch, no head) as one ONNX node per layer
 * (opset 14), the batch dimension left free and each layer's state passed in and out
 * (h_j, c_j → Y_h_j, Y_c_j) so a caller can step it one event at a time, carrying the state
 * across `run` calls. A layer's Y_h [1, B, H] is the next layer's X as it is (sequence length 1):
 * no reshaping nodes, so ORT runs just the recurrent nodes.
 */
export function onnxRnnBytes(model) {
  const nodes = [];
  const inits = [];
  const inputs = [valueInfo('X', [1, 'batch', model.inputs[0].size])];
  const outputs = [];
  let x = 'X';
  model.branches[0].layers.forEach((l, j) => {
    const { inputSize: I, hiddenSize: H } = l;
    const hidden = { name: 'hidden_size', type: onnx.AttributeProto.AttributeType.INT, i: H };
    if (l.kind === 'lstm') {
      const bias = new Float32Array(8 * H);
      bias.set(reorderRows(l.b, H, 1), 0); // Wb; Rb stays zero, the canonical bias is already summed
      inits.push(
        tensor(`W${j}`, [1, 4 * H, I], reorderRows(l.W, H, I)),
        tensor(`R${j}`, [1, 4 * H, H], reorderRows(l.R, H, H)),
        tensor(`B${j}`, [1, 8 * H], bias),
      );
      nodes.push(
        onnx.NodeProto.create({
          opType: 'LSTM',
          input: [x, `W${j}`, `R${j}`, `B${j}`, '', `h${j}`, `c${j}`],
          output: ['', `Y_h${j}`, `Y_c${j}`],
          attribute: [hidden],
        }),
      );
      inputs.push(valueInfo(`h${j}`, [1, 'batch', H]), valueInfo(`c${j}`, [1, 'batch', H]));
      outputs.push(valueInfo(`Y_h${j}`, [1, 'batch', H]), valueInfo(`Y_c${j}`, [1, 'batch', H]));
    } else {
      const bias = new Float32Array(6 * H);
      bias.set(l.bW, 0);
      bias.set(l.bR, 3 * H);
      inits.push(
        tensor(`W${j}`, [1, 3 * H, I], l.W),
        tensor(`R${j}`, [1, 3 * H, H], l.R),
        tensor(`B${j}`, [1, 6 * H], bias),
      );
      nodes.push(
        onnx.NodeProto.create({
          opType: 'GRU',
          input: [x, `W${j}`, `R${j}`, `B${j}`, '', `h${j}`],
          output: ['', `Y_h${j}`],
          attribute: [
            hidden,
            {
              name: 'linear_before_reset',
              type: onnx.AttributeProto.AttributeType.INT,
              i: l.linearBeforeReset ? 1 : 0,
            },
          ],
        }),
      );
      inputs.push(valueInfo(`h${j}`, [1, 'batch', H]));
      outputs.push(valueInfo(`Y_h${j}`, [1, 'batch', H]));
    }
    x = `Y_h${j}`;
  });
  const graph = onnx.GraphProto.create({
    name: 'bench',
    node: nodes,
    initializer: inits,
    input: inputs,
    output: outputs,
  });
  const proto = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'cellstream-bench',
    opsetImport: [{ domain: '', version: 14 }],
    graph,
  });
  return onnx.ModelProto.encode(proto).finish();
}
