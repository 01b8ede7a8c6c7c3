import { validateModel } from '../../model/index.js';
import type { Model } from '../../model/types.js';
import { decodeOnnx, defaultOpset } from './decode.js';
import { walkGraph } from './graph.js';

/**
 * Imports an ONNX model of forward LSTM/GRU layers and a dense head, as `torch.onnx.export` (both
 * exporters) and hand-built graphs write them, into the canonical model. Refuses what cannot be
 * streamed one step per event (bidirectional or reverse nodes, non-zero initial states) and any
 * op outside the recurrent chain, its shape plumbing and its dense head.
 */
export function parseOnnxModel(bytes: Uint8Array, name: string): Model {
  const proto = decodeOnnx(bytes);
  const walk = walkGraph(proto.graph!, defaultOpset(proto));
  const model: Model = {
    name,
    source: 'onnx',
    inputs: [{ name: walk.inputName, size: walk.layers[0].inputSize }],
    branches: [{ input: walk.inputName, layers: walk.layers }],
    head: walk.head,
  };
  validateModel(model);
  return model;
}
