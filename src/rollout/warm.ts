import { KeyedStepper } from '../engine/keyedStepper.js';
import { type StepInput, toEnvelope } from '../engine/stepByKey.js';
import type { Envelope, Rejected } from '../engine/types.js';
import { ConfigError } from '../errors.js';
import type { EventLimits } from '../events/limits.js';
import { modelFeatures, type SidecarSpec } from '../features/modelFeatures.js';
import type { Kernel } from '../model/kernels/index.js';
import type { Model } from '../model/types.js';
import { StagedStore } from '../state/stagedStore.js';
import type { StateRecord, StateStore } from '../state/types.js';

/** Default `maxBatch` of a warm start: history has no latency to keep, so batches are larger than live ones. */
export const DEFAULT_WARM_BATCH = 1024;
/** Default `maxStagedKeys`: keys whose state is held in memory before it is written to the store. */
export const DEFAULT_WARM_STAGED_KEYS = 20_000;

export interface WarmOptions {
  /** The model to warm: only it is stepped. */
  readonly model: Model;
  /** A feature spec file's contents, used instead of the model's embedded spec (for `values` events). */
  readonly spec?: SidecarSpec | undefined;
  /**
   * The history, oldest first per key, in the event contract: envelopes (as `ndjsonLines` gives
   * them, with positions), plain events or their JSON texts, and rejections a source made itself
   * (a line nested too deep), which are passed on to `onRejected` in their place.
   */
  readonly events: AsyncIterable<StepInput | Rejected> | Iterable<StepInput | Rejected>;
  /** Where the model's per-key state goes: the store the model will serve from. */
  readonly store: StateStore;
  /**
   * State another model wrote for a key of the history: `refuse` (default) rejects that key's
   * events (`STATE_MODEL_MISMATCH`, through `onRejected`) and keeps its state; `reset` replaces it.
   */
  readonly onModelMismatch?: 'reset' | 'refuse' | undefined;
  /** Events stepped together (default 1024). */
  readonly maxBatch?: number | undefined;
  /**
   * Most keys whose state is held in memory before it is written to `store` (default 20,000): a
   * key is written once per time it is staged, so with at most this many keys each is written once.
   */
  readonly maxStagedKeys?: number | undefined;
  /** Bounds on each event; by default those of `replay` (no bound on `ts`: history is old). */
  readonly limits?: Partial<EventLimits> | undefined;
  /** Ids remembered per key (default 8), as the serving engine keeps them. */
  readonly idWindow?: number | undefined;
  /** Receives each event that could not be applied (bad line, bad values, refused key), in order. */
  readonly onRejected?: ((rejected: Rejected) => void | Promise<void>) | undefined;
  /** Wall clock (ms) for the records' `updatedAt` and for the figures. Default `Date.now`. */
  readonly now?: (() => number) | undefined;
  readonly kernel?: Kernel | undefined;
}

/** What a warm start did. */
export interface WarmSummary {
  /** Events read from the history. */
  readonly events: number;
  /** Events stepped now. */
  readonly stepped: number;
  /** Events that could not be applied (each passed to `onRejected`). */
  readonly rejected: number;
  /** Events the store's state had already applied (a warm start run again), not stepped twice. */
  readonly duplicates: number;
  /**
   * Keys the store holds now that it did not before (on a first run, every key of the history
   * applied). Counted from the store's size, not remembered key by key, so a history of any
   * number of keys warms in the memory `maxStagedKeys` bounds.
   */
  readonly keys: number;
  /** Keys whose state another model had written, replaced under `onModelMismatch: 'reset'`. */
  readonly stateResets: number;
  /** Wall-clock time of the warm start, ms. */
  readonly elapsedMs: number;
  /** `events` per second of `elapsedMs`: how fast history is replayed. */
  readonly eventsPerSecond: number;
}

/**
 * Warms a model's per-key state from history: every event is stepped through the model once,
 * per key in order, by the serving engine (`KeyedStepper`: the same decoding, feature encoding,
 * kernels and redelivery rules as live serving), and each key's final state is written to
 * `store` with the model's fingerprint and `warmedFrom`, the number of events it was derived from
 * (the steps of the key's sequence: a `reset: true` event starts it over). Predictions are
 * computed and dropped; bad events are counted and passed to `onRejected`, never thrown.
 *
 * Each state is written with the position (or id) of the last event it applied, so running the
 * warm start again over the same history steps nothing twice, and over a longer one steps only
 * what is new. States are staged in memory and written `maxStagedKeys` keys at a time, and at the
 * end; a warm start cut short leaves whole states, each with its `warmedFrom`, that a second run
 * continues. Store failures reject.
 */
export async function warmKeys(options: WarmOptions): Promise<WarmSummary> {
  const now = options.now ?? Date.now;
  const started = now();
  const maxBatch = options.maxBatch ?? DEFAULT_WARM_BATCH;
  const maxStaged = options.maxStagedKeys ?? DEFAULT_WARM_STAGED_KEYS;
  positive(maxBatch, 'maxBatch');
  positive(maxStaged, 'maxStagedKeys');
  const features = modelFeatures(options.model, options.spec);
  const staged = new StagedStore(options.store);
  const stepper = new KeyedStepper({
    model: options.model,
    store: staged,
    onModelMismatch: options.onModelMismatch ?? 'refuse',
    encodeValues: features?.encodeValues,
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.idWindow === undefined ? {} : { idWindow: options.idWindow }),
    ...(options.kernel ? { kernel: options.kernel } : {}),
    now,
  });
  const counts = { events: 0, stepped: 0, rejected: 0, duplicates: 0, stateResets: 0 };
  const keysBefore = await options.store.size();
  const reject = async (rejected: Rejected) => {
    counts.rejected++;
    await options.onRejected?.(rejected);
  };

  const step = async (batch: Envelope[]) => {
    for (const outcome of await stepper.process(batch)) {
      switch (outcome.kind) {
        case 'prediction':
          if (outcome.redelivered) counts.duplicates++;
          else counts.stepped++;
          break;
        case 'duplicate':
          counts.duplicates++;
          break;
        case 'rejected':
          await reject(outcome);
          break;
        case 'state-reset':
          counts.stateResets++;
          break;
        case 'expired':
          // No TTL is set: the history decides each state whole.
          break;
      }
    }
    if (staged.stagedKeys() >= maxStaged) await flush();
  };

  // The staged states go to the store once, each with the count of events it was derived from.
  const flush = async () => {
    const { puts } = staged.changes();
    if (puts.length === 0) return;
    await options.store.putMany(puts.map(([key, record]) => [key, withWarmedFrom(record)] as const));
    staged.clear();
  };

  try {
    let batch: Envelope[] = [];
    for await (const item of options.events) {
      counts.events++;
      if (isRejected(item)) {
        // What came before it is stepped first, so rejections are reported in input order.
        if (batch.length > 0) await step(batch);
        batch = [];
        await reject(item);
        continue;
      }
      batch.push(toEnvelope(item));
      if (batch.length >= maxBatch) {
        await step(batch);
        batch = [];
      }
    }
    if (batch.length > 0) await step(batch);
    await flush();
  } finally {
    await stepper.close();
  }
  const elapsedMs = Math.max(now() - started, 0);
  return {
    ...counts,
    keys: (await options.store.size()) - keysBefore,
    elapsedMs,
    eventsPerSecond: elapsedMs > 0 ? (counts.events * 1000) / elapsedMs : counts.events,
  };
}

/**
 * The record with `warmedFrom`: the steps of the key's sequence, i.e. how many events its state
 * was derived from (a continued warm start counts the events of the earlier run too).
 */
function withWarmedFrom(record: StateRecord): StateRecord {
  return { ...record, warmedFrom: record.seq };
}

function isRejected(item: StepInput | Rejected): item is Rejected {
  return typeof item === 'object' && item !== null && 'kind' in item && item.kind === 'rejected';
}

function positive(n: number, name: string): void {
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${name} must be a positive integer, got ${n}`);
}
