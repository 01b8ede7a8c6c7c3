import type onnxProto from 'onnx-proto';
import { ModelInvalidError } from '../../errors.js';
import { toNumber } from './decode.js';

type ITensorProto = onnxProto.onnx.ITensorProto;

// onnx.TensorProto.DataType values; spelled out so this module needs no runtime import.
const FLOAT = 1;
const INT32 = 6;
const INT64 = 7;
const BOOL = 9;
const DOUBLE = 11;
const EXTERNAL = 1;

/** A constant tensor: floats for weights, integers for shapes and indices. */
export interface ConstTensor {
  readonly name: string;
  readonly dims: readonly number[];
  /** Present for float tensors (FLOAT, DOUBLE), converted to float32. */
  readonly floats?: Float32Array;
  /** Present for integer tensors (INT32, INT64, BOOL). */
  readonly ints?: readonly number[];
}

/** The tensor's dimensions as plain numbers. */
export function tensorDims(t: ITensorProto): number[] {
  return (t.dims ?? []).map(toNumber);
}

function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function rawView(t: ITensorProto): DataView | undefined {
  const raw = t.rawData;
  if (!raw || raw.length === 0) return undefined;
  return new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
}

function checkCount(name: string, got: number, want: number): void {
  if (got !== want) {
    throw new ModelInvalidError(`tensor '${name}' holds ${got} values but its shape needs ${want}`);
  }
}

/**
 * Decodes a TensorProto. ONNX writes weights either as little-endian `raw_data` or in the typed
 * repeated fields (`float_data`, `int64_data`, …); both are read. External data is refused: the
 * importer takes one self-contained file.
 */
export function decodeTensor(t: ITensorProto, fallbackName = '(unnamed)'): ConstTensor {
  const name = t.name || fallbackName;
  if (t.dataLocation === EXTERNAL || (t.externalData && t.externalData.length > 0)) {
    throw new ModelInvalidError(
      `tensor '${name}' is stored as external data; save the model as one file ` +
        '(onnx.save_model(..., save_as_external_data=False))',
    );
  }
  const dims = tensorDims(t);
  const n = elementCount(dims);
  const raw = rawView(t);
  switch (t.dataType) {
    case FLOAT: {
      if (raw) {
        checkCount(name, raw.byteLength / 4, n);
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = raw.getFloat32(i * 4, true);
        return { name, dims, floats: out };
      }
      const data = t.floatData ?? [];
      checkCount(name, data.length, n);
      return { name, dims, floats: Float32Array.from(data) };
    }
    case DOUBLE: {
      if (raw) {
        checkCount(name, raw.byteLength / 8, n);
        const out = new Float32Array(n);
        for (let i = 0; i < n; i++) out[i] = raw.getFloat64(i * 8, true);
        return { name, dims, floats: out };
      }
      const data = t.doubleData ?? [];
      checkCount(name, data.length, n);
      return { name, dims, floats: Float32Array.from(data) };
    }
    case INT64: {
      if (raw) {
        checkCount(name, raw.byteLength / 8, n);
        const out: number[] = [];
        for (let i = 0; i < n; i++) out.push(Number(raw.getBigInt64(i * 8, true)));
        return { name, dims, ints: out };
      }
      const data = (t.int64Data ?? []).map(toNumber);
      checkCount(name, data.length, n);
      return { name, dims, ints: data };
    }
    case INT32:
    case BOOL: {
      const width = t.dataType === INT32 ? 4 : 1;
      if (raw) {
        checkCount(name, raw.byteLength / width, n);
        const out: number[] = [];
        for (let i = 0; i < n; i++) out.push(width === 4 ? raw.getInt32(i * 4, true) : raw.getUint8(i));
        return { name, dims, ints: out };
      }
      // ONNX stores INT32 and BOOL (and other narrow types) in int32_data.
      const data = t.int32Data ?? [];
      checkCount(name, data.length, n);
      return { name, dims, ints: [...data] };
    }
    default:
      throw new ModelInvalidError(
        `tensor '${name}' has ONNX data type ${t.dataType}; cellstream reads float32, float64, int32, int64 and bool tensors`,
      );
  }
}
