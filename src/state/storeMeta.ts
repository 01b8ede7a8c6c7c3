import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { StateError } from '../errors.js';

/** What a state directory says about itself, beside the store's own files. */
export interface StoreMeta {
  /** The model that last wrote the store. */
  readonly model: { readonly fingerprint: string; readonly label: string };
}

/** The file holding a state directory's `StoreMeta`, next to LMDB's `data.mdb`. */
export const STORE_META_FILE = 'cellstream-state.json';

/** The directory's metadata, or `undefined` when it has none (new, or written before it existed). */
export async function readStoreMeta(dir: string): Promise<StoreMeta | undefined> {
  const path = join(dir, STORE_META_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const meta = JSON.parse(text) as StoreMeta;
    if (typeof meta?.model?.fingerprint !== 'string' || typeof meta.model.label !== 'string') {
      throw new Error('no model fingerprint and label');
    }
    return { model: { fingerprint: meta.model.fingerprint, label: meta.model.label } };
  } catch (err) {
    throw new StateError('STATE_CORRUPT', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Replaces the directory's metadata atomically and durably: a crash leaves the old file or the
 * new one, never a torn one (write a temporary file, fsync, rename, fsync the directory).
 */
export async function writeStoreMeta(dir: string, meta: StoreMeta): Promise<void> {
  const path = join(dir, STORE_META_FILE);
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const file = await open(tmp, 'w');
  try {
    await file.writeFile(`${JSON.stringify(meta, null, 2)}\n`);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  const parent = await open(dirname(path), 'r');
  try {
    await parent.sync();
  } finally {
    await parent.close();
  }
}
