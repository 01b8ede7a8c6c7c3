import { StateError } from '../errors.js';
import { readStoreMeta, writeStoreMeta } from '../state/storeMeta.js';
import type { StateStore } from '../state/types.js';

export interface ModelCheckOptions {
  /** The state directory (its metadata file lives there). */
  readonly dir: string;
  readonly store: StateStore;
  /** The loaded model's fingerprint and its `name@version` label. */
  readonly fingerprint: string;
  readonly label: string;
  readonly onModelMismatch: 'reset' | 'refuse';
}

/** What the start-up check found. */
export interface ModelCheck {
  /** The fingerprint (and label, if recorded) of the model that last wrote the state, when another. */
  readonly previous?: { readonly fingerprint: string; readonly label?: string };
}

/**
 * The start-up check of a state directory against the loaded model. The directory's metadata
 * names the model that last wrote it, so the check costs one small read; a directory without
 * metadata (but with state) is scanned until a foreign fingerprint turns up. Another model with
 * `refuse` throws `StateError` `STATE_MODEL_MISMATCH` naming both fingerprints, before any event
 * is read; with `reset` the start goes on — the engine resets each such key when it next comes
 * and reports it — and the metadata then names the loaded model.
 */
export async function checkStoreModel(options: ModelCheckOptions): Promise<ModelCheck> {
  const meta = await readStoreMeta(options.dir);
  let previous: ModelCheck['previous'];
  if (meta) {
    if (meta.model.fingerprint !== options.fingerprint) previous = meta.model;
  } else {
    for await (const [, record] of options.store.entries()) {
      if (record.fingerprint !== options.fingerprint) {
        previous = { fingerprint: record.fingerprint };
        break;
      }
    }
  }
  if (previous && options.onModelMismatch === 'refuse') {
    const who = previous.label ? `${previous.label} (${previous.fingerprint})` : previous.fingerprint;
    throw new StateError(
      'STATE_MODEL_MISMATCH',
      `the state in ${options.dir} was written by model ${who}, not by the loaded model ` +
        `${options.label} (${options.fingerprint}); use --on-model-mismatch reset to start those keys afresh, ` +
        'or point --state at this model’s state',
    );
  }
  if (!meta || previous) {
    await writeStoreMeta(options.dir, { model: { fingerprint: options.fingerprint, label: options.label } });
  }
  return previous ? { previous } : {};
}
