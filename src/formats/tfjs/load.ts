import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ModelFormatError, ModelInvalidError } from '../../errors.js';
import type { Model } from '../../model/types.js';
import { importTfjsLayers } from './import.js';
import { shardPaths } from './weights.js';

/**
 * Loads a TF.js layers model from disk: model.json and its weight shards, which the manifest
 * names relative to model.json's folder. The model's name is `name`, else the topology's.
 */
export async function loadTfjsModel(modelJsonPath: string, name?: string): Promise<Model> {
  const text = await readFile(modelJsonPath, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ModelFormatError(`${modelJsonPath} is not JSON`, { cause });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ModelFormatError(`${modelJsonPath} is not a TF.js model.json object`);
  }
  const dir = path.dirname(path.resolve(modelJsonPath));
  const shards = await Promise.all(
    shardPaths(json as Record<string, unknown>).map(async (p) => {
      const file = path.resolve(dir, p);
      // The manifest is data from the file; do not let it send us reading outside the model's folder.
      if (path.relative(dir, file).startsWith('..') || path.isAbsolute(p)) {
        throw new ModelInvalidError(`weight shard path '${p}' leaves the folder of ${modelJsonPath}`);
      }
      try {
        return await readFile(file);
      } catch (cause) {
        throw new ModelInvalidError(`cannot read weight shard '${p}' of ${modelJsonPath}`, { cause });
      }
    }),
  );
  const total = shards.reduce((n, s) => n + s.byteLength, 0);
  const data = new Uint8Array(total);
  let offset = 0;
  for (const s of shards) {
    data.set(s, offset);
    offset += s.byteLength;
  }
  return importTfjsLayers(json, data, name ?? '');
}
