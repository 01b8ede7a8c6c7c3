import { readFile } from 'node:fs/promises';
import { FeatureSpecError, UsageError } from '../errors.js';
import type { SidecarSpec } from './modelFeatures.js';
import { type FeatureSpec, parseFeatureSpec } from './spec.js';

/** Reads and checks a sidecar spec file (`--spec FILE.json`); it is not yet checked against a model. */
export async function loadFeatureSpec(path: string): Promise<FeatureSpec> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the feature spec '${path}' (${(err as NodeJS.ErrnoException).code})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FeatureSpecError(`feature spec '${path}' is not valid JSON: ${(err as Error).message}`);
  }
  return parseFeatureSpec(json, `'${path}'`);
}

/** A sidecar spec file, loaded, with its path kept for the messages of a later fit check. */
export async function loadSidecarSpec(path: string): Promise<SidecarSpec> {
  return { spec: await loadFeatureSpec(path), where: `'${path}'` };
}
