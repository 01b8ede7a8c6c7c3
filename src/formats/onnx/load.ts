import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ModelFormatError } from '../../errors.js';
import type { Model } from '../../model/types.js';
import { parseOnnxModel } from './import.js';

/** Loads an `.onnx` file from disk. The model's name is `name`, else the file name without `.onnx`. */
export async function loadOnnxModel(file: string, name?: string): Promise<Model> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (cause) {
    throw new ModelFormatError(`cannot read ONNX model ${file}`, { cause });
  }
  return parseOnnxModel(bytes, name ?? path.basename(file, path.extname(file)));
}
