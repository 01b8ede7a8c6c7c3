import { UsageError } from '../errors.js';
import { loadSidecarSpec } from '../features/loadSpec.js';
import { modelFeatures, withSpec } from '../features/modelFeatures.js';
import { MANIFEST_SUFFIX, saveCellstreamModel } from '../formats/cellstream/index.js';
import { loadModel } from '../formats/load.js';
import type { Model } from '../model/types.js';

export interface ConvertOptions {
  /** Any model file `loadModel` reads. */
  readonly model: string;
  /** A feature spec file to embed; without it, a spec the model already carries is kept. */
  readonly spec?: string | undefined;
  /** The `.cellstream.json` manifest to write; the weights go beside it. */
  readonly output: string;
  readonly name?: string | undefined;
  readonly version?: string | undefined;
}

/**
 * `cellstream convert`: loads a model of any supported format and saves it in cellstream's own,
 * with its feature spec embedded once it is checked against the model. Resolves with the model
 * as written.
 */
export async function runConvert(options: ConvertOptions): Promise<Model> {
  if (!options.output.endsWith(MANIFEST_SUFFIX)) {
    throw new UsageError(`--output must end in ${MANIFEST_SUFFIX}, got '${options.output}'`);
  }
  for (const [flag, value] of [
    ['--name', options.name],
    ['--version', options.version],
  ] as const) {
    if (value !== undefined && value.trim() === '') throw new UsageError(`${flag} must not be empty`);
  }
  const loaded = await loadModel(options.model);
  const sidecar = options.spec === undefined ? undefined : await loadSidecarSpec(options.spec);
  const features = modelFeatures(loaded, sidecar);
  const version = options.version ?? loaded.version;
  const renamed: Model = {
    ...loaded,
    name: options.name ?? loaded.name,
    ...(version === undefined ? {} : { version }),
  };
  const model = features ? withSpec(renamed, features.spec) : renamed;
  await saveCellstreamModel(model, options.output);
  return model;
}
