import h5wasm, { type Dataset, type Group } from 'h5wasm';
import { ModelFormatError, ModelInvalidError } from '../../errors.js';

/** A dataset read as float32, with its HDF5 shape. */
export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array<ArrayBuffer>;
}

/** Read-only view of an open HDF5 file, by absolute paths such as `model_weights/lstm`. */
export interface H5Reader {
  has(path: string): boolean;
  /** Names of a group's members. */
  keys(path: string): string[];
  /** An attribute's value (strings and string arrays come back as JS strings), or undefined. */
  attr(path: string, name: string): unknown;
  tensor(path: string): Tensor;
}

let opened = 0;

/**
 * Opens HDF5 `bytes` with h5wasm and runs `use` on it. The browser/ESM build is used on purpose:
 * its Emscripten file system lives in memory, so nothing touches the host disk (the `h5wasm/node`
 * build maps the host file system instead). The in-memory file is closed and removed afterwards.
 */
export async function withH5<T>(bytes: Uint8Array, use: (h5: H5Reader) => T): Promise<T> {
  const module = await h5wasm.ready;
  const name = `/cellstream-keras-${++opened}.h5`;
  module.FS.writeFile(name, bytes);
  let file: InstanceType<typeof h5wasm.File> | undefined;
  try {
    try {
      file = new h5wasm.File(name, 'r');
    } catch (cause) {
      throw new ModelFormatError('not an HDF5 file', { cause });
    }
    return use(reader(file));
  } finally {
    file?.close();
    module.FS.unlink(name);
  }
}

function reader(file: Group): H5Reader {
  const entity = (path: string) => (path === '' || path === '/' ? file : file.get(path));
  return {
    has: (path) => entity(path) != null,
    keys(path) {
      const g = entity(path);
      return g instanceof h5wasm.Group ? g.keys() : [];
    },
    attr(path, name) {
      const e = entity(path);
      if (!(e instanceof h5wasm.Group || e instanceof h5wasm.Dataset)) return undefined;
      return name in e.attrs ? e.attrs[name].value : undefined;
    },
    tensor(path) {
      const d = entity(path);
      if (!(d instanceof h5wasm.Dataset))
        throw new ModelInvalidError(`weights file has no dataset '${path}'`);
      return { shape: d.shape ?? [], data: asFloat32(d, path) };
    },
  };
}

/** A copy that outlives the file; float64 or float16 weights become the canonical float32. */
function asFloat32(d: Dataset, path: string): Float32Array<ArrayBuffer> {
  const v = d.value;
  if (ArrayBuffer.isView(v) && !(v instanceof DataView) && !isBigInt(v)) {
    return Float32Array.from(v as ArrayLike<number>);
  }
  throw new ModelInvalidError(`weights dataset '${path}' is not numeric (dtype ${String(d.dtype)})`);
}

function isBigInt(v: ArrayBufferView): boolean {
  return v instanceof BigInt64Array || v instanceof BigUint64Array;
}
