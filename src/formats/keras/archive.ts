import { unzipSync } from 'fflate';
import { ModelFormatError } from '../../errors.js';

/** What a Keras 3 `.keras` zip holds that the importer needs. */
export interface KerasArchive {
  /** The model's `config.json`, parsed. */
  readonly config: unknown;
  /** `metadata.json`'s `keras_version`, e.g. "3.15.1", when present. */
  readonly kerasVersion: string | undefined;
  /** The bytes of `model.weights.h5`. */
  readonly weights: Uint8Array;
}

const WANTED = new Set(['config.json', 'metadata.json', 'model.weights.h5']);

/** Unpacks a `.keras` zip into its config, version and weights file. */
export function readKerasArchive(bytes: Uint8Array): KerasArchive {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, { filter: (f) => WANTED.has(f.name) });
  } catch (cause) {
    throw new ModelFormatError('not a .keras file: the bytes are not a zip archive', { cause });
  }
  const config = files['config.json'];
  const weights = files['model.weights.h5'];
  if (!config || !weights) {
    throw new ModelFormatError('not a .keras file: the zip lacks config.json or model.weights.h5');
  }
  const meta = files['metadata.json'] ? parseJson(files['metadata.json'], 'metadata.json') : {};
  const version = (meta as { keras_version?: unknown }).keras_version;
  return {
    config: parseJson(config, 'config.json'),
    kerasVersion: typeof version === 'string' ? version : undefined,
    weights,
  };
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (cause) {
    throw new ModelFormatError(`.keras file has an unreadable ${what}`, { cause });
  }
}
