import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { ModelFormatError } from '../errors.js';
import type { Model } from '../model/types.js';
import { validateModel } from '../model/validate.js';
import { isManifest, loadCellstreamManifest, MANIFEST_SUFFIX, type Manifest } from './cellstream/index.js';
import { loadKerasModel } from './keras/index.js';
import { loadOnnxModel } from './onnx/index.js';
import { loadTfjsModel } from './tfjs/index.js';

/** The model file kinds `loadModel` accepts, for help texts and error messages. */
export const SUPPORTED_MODEL_FILES = `.onnx, .keras, Keras .h5, TF.js layers model.json, cellstream ${MANIFEST_SUFFIX}`;

/**
 * Loads a model from any supported file. The format is told by the extension, and by content
 * where JSON files share one. The result is validated: a model that loads is a model that runs.
 */
export async function loadModel(path: string): Promise<Model> {
  const model = await loadByFormat(path);
  validateModel(model);
  return model;
}

async function loadByFormat(path: string): Promise<Model> {
  const ext = extname(path).toLowerCase();
  if (ext === '.onnx') return loadOnnxModel(path);
  if (ext === '.keras' || ext === '.h5' || ext === '.hdf5') return loadKerasModel(path);
  if (ext === '.json') {
    const json = await readJson(path);
    if (isManifest(json)) return loadCellstreamManifest(json as Manifest, path);
    if (typeof json === 'object' && json !== null && 'modelTopology' in json) return loadTfjsModel(path);
    throw new ModelFormatError(
      `'${path}' is JSON but neither a cellstream manifest ("format": "cellstream") nor a TF.js layers model.json ("modelTopology")`,
    );
  }
  throw new ModelFormatError(`cannot tell the format of '${path}'; supported: ${SUPPORTED_MODEL_FILES}`);
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelFormatError(
      code === 'ENOENT'
        ? `model file '${path}' does not exist`
        : `cannot read model file '${path}' (${code})`,
      { cause: err },
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ModelFormatError(`'${path}' is not valid JSON`, { cause: err });
  }
}
