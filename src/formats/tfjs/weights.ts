import { ModelInvalidError } from '../../errors.js';

/** One tensor of a layers model's weights, decoded. */
export interface NamedWeight {
  readonly name: string;
  readonly shape: readonly number[];
  readonly values: Float32Array;
}

interface WeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly quantization?: unknown;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseSpec(raw: unknown, where: string): WeightSpec {
  if (!isRecord(raw) || typeof raw['name'] !== 'string' || !Array.isArray(raw['shape'])) {
    throw new ModelInvalidError(`${where}: a weight entry needs a name and a shape`);
  }
  const shape = raw['shape'] as unknown[];
  if (!shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
    throw new ModelInvalidError(
      `${where}: weight '${raw['name']}' has an invalid shape ${JSON.stringify(shape)}`,
    );
  }
  return {
    name: raw['name'],
    shape: shape as number[],
    dtype: typeof raw['dtype'] === 'string' ? raw['dtype'] : 'float32',
    quantization: raw['quantization'],
  };
}

/**
 * The weight entries of a model.json in storage order: every `weightsManifest` group's
 * `weights`, groups in order (the order their shards concatenate in), or the flat
 * `weightSpecs` of in-memory artifacts (`tf.io.withSaveHandler`).
 */
export function weightSpecs(modelJson: Record<string, unknown>): WeightSpec[] {
  const manifest = modelJson['weightsManifest'];
  if (Array.isArray(manifest)) {
    return manifest.flatMap((group, g) => {
      if (!isRecord(group) || !Array.isArray(group['weights'])) {
        throw new ModelInvalidError(`weightsManifest[${g}] has no weights list`);
      }
      return (group['weights'] as unknown[]).map((w) => parseSpec(w, `weightsManifest[${g}]`));
    });
  }
  const specs = modelJson['weightSpecs'];
  if (Array.isArray(specs)) return specs.map((w) => parseSpec(w, 'weightSpecs'));
  throw new ModelInvalidError('model.json has neither weightsManifest nor weightSpecs');
}

/** The shard paths of a model.json, in the order their bytes concatenate. */
export function shardPaths(modelJson: Record<string, unknown>): string[] {
  const manifest = modelJson['weightsManifest'];
  if (!Array.isArray(manifest)) throw new ModelInvalidError('model.json has no weightsManifest');
  return manifest.flatMap((group, g) => {
    const paths = isRecord(group) ? group['paths'] : undefined;
    if (!Array.isArray(paths) || !paths.every((p) => typeof p === 'string')) {
      throw new ModelInvalidError(`weightsManifest[${g}] has no list of shard paths`);
    }
    return paths as string[];
  });
}

/**
 * Cuts the concatenated weight bytes into float32 tensors by their manifest entries.
 * Only plain float32 is accepted: a quantized or integer weight would need dequantisation
 * rules cellstream does not implement, and running it as float32 would be silently wrong.
 */
export function decodeWeights(
  specs: readonly WeightSpec[],
  weightData: Uint8Array,
): Map<string, NamedWeight> {
  const out = new Map<string, NamedWeight>();
  let offset = 0;
  for (const spec of specs) {
    if (spec.quantization !== undefined && spec.quantization !== null) {
      throw new ModelInvalidError(
        `weight '${spec.name}' is quantized (${JSON.stringify(spec.quantization)}); ` +
          'cellstream reads float32 weights only — save or convert the model without quantization',
      );
    }
    if (spec.dtype !== 'float32') {
      throw new ModelInvalidError(
        `weight '${spec.name}' has dtype ${spec.dtype}; cellstream reads float32 weights only`,
      );
    }
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const bytes = count * 4;
    if (offset + bytes > weightData.byteLength) {
      throw new ModelInvalidError(
        `weight data is too short: '${spec.name}' needs bytes ${offset}..${offset + bytes}, ` +
          `only ${weightData.byteLength} present`,
      );
    }
    // Copy rather than view: the shard buffer need not be 4-byte aligned, and the model must
    // not alias a buffer its caller may reuse.
    const values = new Float32Array(count);
    new Uint8Array(values.buffer).set(weightData.subarray(offset, offset + bytes));
    if (out.has(spec.name))
      throw new ModelInvalidError(`weight '${spec.name}' appears twice in the manifest`);
    out.set(spec.name, { name: spec.name, shape: spec.shape, values });
    offset += bytes;
  }
  if (offset !== weightData.byteLength) {
    throw new ModelInvalidError(
      `weight data has ${weightData.byteLength} bytes but the manifest describes ${offset}`,
    );
  }
  return out;
}
