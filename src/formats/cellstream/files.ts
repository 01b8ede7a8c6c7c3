import { readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ModelInvalidError } from '../../errors.js';
import type { Model } from '../../model/types.js';
import { decodeModel, encodeModel, type Manifest } from './manifest.js';

/** The suffix of a cellstream manifest; its weights sit beside it as `<stem>.cellstream.bin`. */
export const MANIFEST_SUFFIX = '.cellstream.json';

/** Writes `model` as `<path>` (a `.cellstream.json` manifest) plus its `.cellstream.bin` weights. */
export async function saveCellstreamModel(model: Model, path: string): Promise<void> {
  if (!path.endsWith(MANIFEST_SUFFIX)) {
    throw new ModelInvalidError(`a cellstream model path must end in ${MANIFEST_SUFFIX}, got '${path}'`);
  }
  const weightsFile = `${basename(path).slice(0, -MANIFEST_SUFFIX.length)}.cellstream.bin`;
  const { manifest, weights } = encodeModel(model, weightsFile);
  await writeFile(join(dirname(path), weightsFile), weights);
  await writeFile(path, `${JSON.stringify(manifest, null, 2)}\n`);
}

/** Reads a model saved by `saveCellstreamModel`, given its parsed manifest and the manifest's path. */
export async function loadCellstreamManifest(manifest: Manifest, path: string): Promise<Model> {
  const weightsPath = join(dirname(path), manifest.weights);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(weightsPath);
  } catch (err) {
    throw new ModelInvalidError(`cannot read the weights of '${path}' at '${weightsPath}'`, { cause: err });
  }
  return decodeModel(manifest, bytes);
}
