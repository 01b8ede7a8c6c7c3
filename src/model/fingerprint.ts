import { createHash } from 'node:crypto';
import type { Model } from './types.js';
import { structure, tensors } from './walk.js';

const cache = new WeakMap<Model, string>();

/**
 * A stable identity of the computation: sha-256 over the structure and every weight's bytes.
 * Names and metadata are left out, so renaming a model keeps its stored states valid while any
 * change to the numbers does not.
 */
export function modelFingerprint(model: Model): string {
  const hit = cache.get(model);
  if (hit) return hit;
  const h = createHash('sha256');
  h.update(JSON.stringify(structure(model)));
  for (const [name, t] of tensors(model)) {
    h.update(name);
    h.update(new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
  }
  const fp = h.digest('hex');
  cache.set(model, fp);
  return fp;
}
