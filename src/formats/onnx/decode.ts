import onnxProto from 'onnx-proto';
import { ModelFormatError } from '../../errors.js';

// onnx-proto is CommonJS (protobufjs 6 static code); under NodeNext only its default export is
// reliable, and the `onnx` namespace hangs off it.
export const { onnx } = onnxProto;
export type { onnx as OnnxTypes } from 'onnx-proto';

/**
 * Decodes the bytes of an `.onnx` file into a ModelProto. Fails with ModelFormatError when the
 * bytes are not a protobuf ModelProto or carry no graph.
 */
export function decodeOnnx(bytes: Uint8Array): onnxProto.onnx.ModelProto {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new ModelFormatError(`not an ONNX model: ${(err as Error).message}`, { cause: err });
  }
  if (!model.graph?.node?.length) {
    throw new ModelFormatError('not an ONNX model: it has no graph nodes');
  }
  return model;
}

/** The opset version of the default ONNX domain the model was written for. */
export function defaultOpset(model: onnxProto.onnx.IModelProto): number {
  for (const o of model.opsetImport ?? []) {
    if (!o.domain || o.domain === 'ai.onnx') return toNumber(o.version ?? 0);
  }
  return 0;
}

/** protobufjs decodes int64 as `Long` when the long package is present; the values we read fit in a double. */
export function toNumber(v: number | { toNumber(): number } | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}
