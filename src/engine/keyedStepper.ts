import { ConfigError, type ErrorCode, EventError, StateError } from '../errors.js';
import { decodeEvent } from '../events/decode.js';
import { checkEvent, type EventLimits, eventLimits } from '../events/limits.js';
import type { Event, Position } from '../events/types.js';
import type { PredictionDecoder } from '../features/decodeOutput.js';
import { checkFloat32Values, encodeInputs, type ValuesEncoder } from '../features/encodeInputs.js';
import { createState, modelFingerprint, outputSize, stateSize } from '../model/index.js';
import { type Kernel, selectKernel } from '../model/kernels/index.js';
import type { Model } from '../model/types.js';
import {
  type ReadInto,
  type StateRecord,
  type StateStore,
  UNREADABLE_STATE_FINGERPRINT,
  unreadableStateReason,
} from '../state/types.js';
import { lastPositions } from './commitPositions.js';
import { type ExpiryOptions, ExpiryPolicy } from './expiry.js';
import {
  alreadyApplied,
  DEFAULT_ID_WINDOW,
  isLastApplied,
  MAX_ID_WINDOW,
  nextEarlierIds,
} from './redelivery.js';
import { Scratch, Slots } from './scratch.js';
import { StoreSweep } from './storeSweep.js';
import type { Envelope, Outcome } from './types.js';

export interface KeyedStepperOptions {
  readonly model: Model;
  readonly store: StateStore;
  /** The predictions' `model` field; default `name@version`, the version defaulting to a fingerprint prefix. */
  readonly modelLabel?: string;
  /**
   * A stored state written by a model with another fingerprint: `'refuse'` (default) rejects
   * that key's events (`STATE_MODEL_MISMATCH`) and leaves its state alone; `'reset'` discards
   * it, reports a `state-reset` outcome and starts the key afresh. The same for a key whose
   * changelog record did not decode in a restore (`UNREADABLE_STATE_FINGERPRINT`), refused with
   * `STATE_CORRUPT`.
   */
  readonly onModelMismatch?: 'reset' | 'refuse';
  /**
   * Bounds on each event (key and id length, `ts` ahead of the clock `now`); an event beyond one
   * is rejected with its own code. Defaults: `DEFAULT_EVENT_LIMITS`, no `ts` bound. A key limit
   * the store cannot index is a `ConfigError`.
   */
  readonly limits?: Partial<EventLimits>;
  /**
   * How many of a key's last applied event ids are remembered in its record (default 8): an
   * event whose id is among them is a redelivery, not stepped again.
   */
  readonly idWindow?: number;
  /** Encodes events' named `values`, from the model's feature spec; without it such events are rejected. */
  readonly encodeValues?: ValuesEncoder;
  /** Adds the feature spec's decoded fields (label, value, …) to every prediction, repeated ones included. */
  readonly decodePrediction?: PredictionDecoder;
  /**
   * The sink's acknowledgement: receives each batch's outcomes after its steps and before its
   * state is written, which waits for the returned promise. So a crash can repeat predictions
   * (identically) but never lose one. Without it, outcomes leave only through `process`, after
   * the state is written; a crash in between then loses the predictions of a key's earlier
   * events in the batch (its last one is repeated on redelivery from the stored `lastOutput`).
   */
  readonly emit?: (outcomes: readonly Outcome[]) => void | Promise<void>;
  /**
   * Called when a batch is done — its state durable, `emit` resolved — with the last position of
   * each source stream (file, topic-partition) in the batch: a source may commit up to and
   * including these. A failed batch never calls it.
   */
  readonly onCommittable?: (positions: readonly Position[]) => void | Promise<void>;
  /** Idle keys' state expires, each reported as an `expired` outcome; off by default. */
  readonly ttl?: ExpiryOptions;
  /** Wall clock in ms, for processing-time TTL and records' `updatedAt`. Default `Date.now`. */
  readonly now?: () => number;
  /** The step implementation; default `selectKernel()` (native AVX2 where its addon loads, else wasm SIMD; CELLSTREAM_KERNEL overrides). */
  readonly kernel?: Kernel;
}

/** Running totals of what happened to stored state, for metrics. */
export interface StepperCounts {
  /** Keys whose state expired by TTL. */
  readonly expired: number;
  /** Keys whose state was discarded because another model wrote it. */
  readonly stateResets: number;
  /** Redelivered events whose prediction was repeated from the stored state. */
  readonly redelivered: number;
  /** Redelivered events with no prediction to repeat (`duplicate` outcomes). */
  readonly duplicates: number;
}

/** One key's work in a batch: the events to step, in order, and where its sequence stands. */
interface Lane {
  readonly key: string;
  /** Batch indices of the events to step, in order. */
  readonly steps: number[];
  /** Ids applied before the lane's last event, oldest first, for its record. */
  readonly earlierIds: readonly string[] | undefined;
  /** The state the lane starts from: the stored one (in the read buffer, as a rule) or zeros. */
  initial: Float32Array;
  seq: number;
  /** The stored `warmedFrom`, carried while the warmed sequence goes on; cleared by a reset. */
  warmedFrom: number | undefined;
}

/** What one batch collects on its way besides its envelopes' outcomes. */
class BatchNotes {
  /** Outcomes to report before an envelope's own (`state-reset`, `expired`), by batch index. */
  notices: Map<number, Outcome[]> | undefined;
  /** Redeliveries, within the batch, of an event stepped earlier in it: index, original index. */
  echoes: number[] | undefined;
  expired = 0;
  stateResets = 0;
  redelivered = 0;
  duplicates = 0;

  notify(index: number, outcome: Outcome): void {
    this.notices ??= new Map();
    const list = this.notices.get(index);
    if (list) list.push(outcome);
    else this.notices.set(index, [outcome]);
  }
}

const NO_POSITION: Position = { kind: 'none' };
const NO_ECHOES: readonly number[] = [];

/** Scratch buffer ids (see Scratch): input i is buffer i. */
const INPUTS = 0;

/** Batches of at most this many events find their distinct keys without a Map. */
const FEW_KEYS = 8;

/** The index of `key` in `keys`, or `undefined`. */
function indexOf(keys: readonly string[], key: string): number | undefined {
  for (let k = 0; k < keys.length; k++) if (keys[k] === key) return k;
  return undefined;
}

/**
 * The distinct keys of the batch being applied, each with its index among them. The Map is kept
 * from batch to batch, since clearing a Map allocates a new table, and a key seen before is
 * found with one look-up: its entry says which batch it was last in. The Map is started afresh
 * once it holds many more keys than a batch.
 */
class BatchKeys {
  private readonly index = new Map<string, { batch: number; k: number }>();
  private batch = 0;

  /** Starts a batch of at most `n` keys. */
  start(n: number): void {
    if (this.index.size > Math.max(4096, 4 * n)) this.index.clear();
    this.batch++;
  }

  /** The key's index if the batch has it already; otherwise takes it as the key with index `k`. */
  claim(key: string, k: number): number | undefined {
    const entry = this.index.get(key);
    if (entry === undefined) {
      this.index.set(key, { batch: this.batch, k });
      return undefined;
    }
    if (entry.batch === this.batch) return entry.k;
    entry.batch = this.batch;
    entry.k = k;
    return undefined;
  }

  has(key: string): boolean {
    return this.index.get(key)?.batch === this.batch;
  }
}

/**
 * Applies events to per-key recurrent state: one step per event, in arrival order per key, with
 * distinct keys stepped together through `stepBatch`. State is read from and written back to the
 * store once per batch. Batches are applied one after another even if `process` is called again
 * before the previous call settles.
 */
export class KeyedStepper {
  readonly model: Model;
  readonly modelLabel: string;
  private readonly store: StateStore;
  private readonly fingerprint: string;
  private readonly onModelMismatch: 'reset' | 'refuse';
  private readonly encodeValues: ValuesEncoder | undefined;
  private readonly decode: PredictionDecoder;
  private readonly stateSize: number;
  private readonly outputSize: number;
  private readonly inputSizes: readonly number[];
  private readonly zeroState: Float32Array;
  private readonly emit: KeyedStepperOptions['emit'];
  private readonly onCommittable: KeyedStepperOptions['onCommittable'];
  private readonly now: () => number;
  private readonly limits: EventLimits;
  private readonly keyError: ((key: string) => StateError | undefined) | undefined;
  private readonly freeKeys: (() => number) | undefined;
  private readonly idWindow: number;
  private readonly expiry: ExpiryPolicy | undefined;
  private readonly sweep: StoreSweep | undefined;
  private readonly tally = { expired: 0, stateResets: 0, redelivered: 0, duplicates: 0 };
  private readonly kernel: Kernel;
  private readonly scratch = new Scratch();
  // Reused from batch to batch, as only one batch is applied at a time: each key's index among
  // the batch's keys, each event's successor of the same key (-1 for none), and each key's first
  // and last event.
  private readonly batchKeys = new BatchKeys();
  private nextOfKey = new Int32Array(0);
  private firstOfKey = new Int32Array(0);
  private lastOfKey = new Int32Array(0);
  /** Where a batch's states and last outputs are read to, whole buffers, grown as needed. */
  private readonly readStates: Slots;
  private readonly readOutputs: Slots;
  /** States stepped in an order other than the one they were read in. */
  private readonly stepStates: Slots;
  private readonly lastOutputs: Slots;
  private readInto: ReadInto = { states: [], outputs: [] };
  private readonly kernelInputs: Float32Array[] = [];
  /** A prediction's output array to copy: a copy of a double array beats filling a new one. */
  private readonly outputTemplate: number[];
  /** Batches applied or waiting (each counts itself off when done); `tail` is the last of them. */
  private pending = 0;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(options: KeyedStepperOptions) {
    this.model = options.model;
    this.store = options.store;
    this.fingerprint = modelFingerprint(options.model);
    this.modelLabel =
      options.modelLabel ?? `${options.model.name}@${options.model.version ?? this.fingerprint.slice(0, 8)}`;
    this.onModelMismatch = options.onModelMismatch ?? 'refuse';
    this.encodeValues = options.encodeValues;
    this.decode = options.decodePrediction ?? ((p) => p);
    this.stateSize = stateSize(options.model);
    this.outputSize = outputSize(options.model);
    this.inputSizes = options.model.inputs.map((input) => input.size);
    this.zeroState = createState(options.model);
    this.readStates = new Slots(this.stateSize);
    this.readOutputs = new Slots(this.outputSize);
    this.stepStates = new Slots(this.stateSize);
    this.lastOutputs = new Slots(this.outputSize);
    this.outputTemplate = new Array<number>(this.outputSize).fill(0.5);
    this.emit = options.emit;
    this.onCommittable = options.onCommittable;
    this.now = options.now ?? Date.now;
    this.limits = eventLimits(options.limits);
    this.keyError = options.store.keyError?.bind(options.store);
    this.freeKeys = options.store.freeKeys?.bind(options.store);
    const storeKeyBytes = options.store.maxKeyBytes;
    // A key's store encoding may take one byte more than its UTF-8 (lmdb's escape byte).
    if (storeKeyBytes !== undefined && this.limits.maxKeyBytes + 1 > storeKeyBytes) {
      throw new ConfigError(
        `events.maxKeyBytes ${this.limits.maxKeyBytes} is more than the state store can index (${storeKeyBytes - 1} bytes)`,
      );
    }
    this.idWindow = options.idWindow ?? DEFAULT_ID_WINDOW;
    if (!Number.isInteger(this.idWindow) || this.idWindow < 1 || this.idWindow > MAX_ID_WINDOW) {
      throw new ConfigError(
        `state.idWindow must be an integer from 1 to ${MAX_ID_WINDOW}, got ${this.idWindow}`,
      );
    }
    if (options.ttl) {
      this.expiry = new ExpiryPolicy(options.ttl, this.now);
      this.sweep = new StoreSweep(options.store, this.stateSize, this.outputSize);
    }
    this.kernel = options.kernel ?? selectKernel();
  }

  get counts(): StepperCounts {
    return { ...this.tally };
  }

  /**
   * Waits for batches in flight and releases what the stepper holds of the store (the TTL
   * sweep's iteration). Call before closing the store; the store itself stays open.
   */
  async close(): Promise<void> {
    await this.tail.catch(() => {});
    await this.sweep?.stop();
  }

  /**
   * Applies `batch` and resolves with what became of it, in batch order: one `prediction`,
   * `rejected` or `duplicate` per envelope, with a `state-reset` or `expired` before a key's
   * outcome when its stored state was discarded there, and the TTL sweep's `expired` outcomes
   * last. A redelivery of a key's last applied event repeats its prediction (`redelivered`).
   * A failure that belongs to one event or one key — the event breaks a limit, the key's stored
   * state does not decode or another model wrote it (under `refuse`), the key is new and the
   * store can add no more (`StateStore.freeKeys`) — is that event's (those events') `rejected`
   * outcome; the rest of the batch goes on. Resolves only once the batch's
   * state is durable in the store. Rejects (writing nothing) when the store as a whole or `emit`
   * fails; the state is then as before the batch.
   */
  process(batch: readonly Envelope[]): Promise<Outcome[]> {
    const idle = this.pending === 0;
    this.pending++;
    let run: Promise<Outcome[]>;
    if (idle) {
      // With nothing in flight the batch starts at once, sparing a turn of the microtask queue.
      run = this.apply(batch);
    } else {
      // After the batch before, whether it succeeded or failed.
      const go = () => this.apply(batch);
      run = this.tail.then(go, go);
    }
    this.tail = run;
    return run;
  }

  private async apply(batch: readonly Envelope[]): Promise<Outcome[]> {
    try {
      const n = batch.length;
      const results: Outcome[] = new Array(n);
      const events: (Event | undefined)[] = new Array(n);
      // Each stepped event's inputs, by batch index.
      const encoded: Array<readonly ArrayLike<number>[]> = new Array(n);
      const notes = new BatchNotes();

      // Group the events by key, in arrival order: keys[k]'s events are first[k], then next[…].
      if (this.nextOfKey.length < n) {
        const size = Math.max(n, 2 * this.nextOfKey.length);
        this.nextOfKey = new Int32Array(size);
        this.firstOfKey = new Int32Array(size);
        this.lastOfKey = new Int32Array(size);
      }
      const next = this.nextOfKey;
      const first = this.firstOfKey;
      const last = this.lastOfKey;
      // A few keys are told apart faster by comparing them than by a Map.
      const keyIndex = n > FEW_KEYS ? this.batchKeys : undefined;
      keyIndex?.start(n);
      const keys: string[] = [];
      // One clock reading per batch for the ts bound: its events arrived together.
      const now = this.limits.maxTsAheadMs === undefined ? 0 : this.now();
      for (let i = 0; i < n; i++) {
        const envelope = batch[i];
        let event: Event;
        try {
          event = envelope.event ?? decodeEvent(envelope.raw, this.limits);
          checkEvent(event, this.limits, now);
        } catch (err) {
          results[i] = rejection(err, envelope.raw ?? JSON.stringify(envelope.event), envelope.position);
          continue;
        }
        // A key the store can never hold (a backstop behind the key limit, or a reserved name).
        const keyError = this.keyError?.(event.key);
        if (keyError !== undefined) {
          results[i] = refusal(keyError, envelope.raw ?? JSON.stringify(event), envelope.position);
          continue;
        }
        events[i] = event;
        this.expiry?.observe(event.ts);
        next[i] = -1;
        const k = keyIndex ? keyIndex.claim(event.key, keys.length) : indexOf(keys, event.key);
        if (k === undefined) {
          first[keys.length] = i;
          last[keys.length] = i;
          keys.push(event.key);
        } else {
          next[last[k]] = i;
          last[k] = i;
        }
      }

      // The states are read straight into the buffer they are stepped in, when lanes and keys match.
      const K = keys.length;
      const into = this.readBuffers(K);
      const read = K > 0 ? this.store.getMany(keys, into) : [];
      let records: (StateRecord | StateError | undefined)[];
      try {
        records = isPromise(read) ? await read : read;
      } catch (err) {
        records = await this.readApart(keys, into, err);
      }
      const lanes: Lane[] = [];
      // A store with a cap on its keys takes this many new ones; keys it holds need no room.
      let room = K > 0 && this.freeKeys ? this.freeKeys() : Number.POSITIVE_INFINITY;
      for (let k = 0; k < K; k++) {
        const isNew = records[k] === undefined;
        const record =
          isNew && room <= 0 ? fullError(keys[k]) : this.usable(keys[k], records[k], first[k], notes);
        if (record instanceof StateError) {
          for (let i = first[k]; i !== -1; i = next[i]) {
            const envelope = batch[i];
            results[i] = refusal(record, envelope.raw ?? JSON.stringify(events[i]), envelope.position);
          }
          continue;
        }
        const lane = this.plan(keys[k], first[k], next, batch, events, record, results, encoded, notes);
        if (lane) {
          lanes.push(lane);
          if (isNew) room--;
        }
      }

      const written = this.stepLanes(lanes, lanes.length === K, batch, events, encoded, results);
      const echoes = notes.echoes ?? NO_ECHOES;
      for (let e = 0; e < echoes.length; e += 2) {
        const first = results[echoes[e + 1]];
        if (first.kind !== 'prediction')
          throw new Error('internal: a redelivery echoes a step without a prediction');
        results[echoes[e]] = { ...first, position: batch[echoes[e]].position, redelivered: true };
      }
      // Without a TTL there is nothing to sweep, and no reason to take a turn of the microtask queue.
      const swept = this.sweep
        ? await this.sweepIdle(n, (key) => (keyIndex ? keyIndex.has(key) : keys.includes(key)))
        : [];

      let outcomes = results;
      if (notes.notices !== undefined || swept.length > 0) {
        outcomes = [];
        for (let i = 0; i < n; i++) {
          const before = notes.notices?.get(i);
          if (before) outcomes.push(...before);
          outcomes.push(results[i]);
        }
        for (const [key, record, reason] of swept) outcomes.push(expiredOutcome(key, record, reason));
        notes.expired += swept.length;
      }

      if (this.emit) await this.emit(outcomes);
      if (written.length > 0) {
        const put = this.store.putMany(written);
        if (isPromise(put)) await put;
      }
      if (swept.length > 0) await this.store.deleteMany(swept.map(([key]) => key));
      this.tally.expired += notes.expired;
      this.tally.stateResets += notes.stateResets;
      this.tally.redelivered += notes.redelivered;
      this.tally.duplicates += notes.duplicates;
      if (this.onCommittable) await this.onCommittable(lastPositions(batch.map((e) => e.position)));
      return outcomes;
    } finally {
      this.pending--;
    }
  }

  /**
   * Sorts one key's events of the batch (`first`, then along `next`) into those to step (its
   * lane, starting from the stored state) and redeliveries, whose outcomes it fills in: the last
   * applied event's prediction repeated (from the record, or echoing a step earlier in the
   * batch), or a `duplicate`. Expires the stored state on the first event to step when it is
   * past its TTL.
   */
  private plan(
    key: string,
    first: number,
    next: Int32Array,
    batch: readonly Envelope[],
    events: readonly (Event | undefined)[],
    stored: StateRecord | undefined,
    results: Outcome[],
    encoded: Array<readonly ArrayLike<number>[]>,
    notes: BatchNotes,
  ): Lane | undefined {
    let record = stored;
    let steps: number[] | undefined;
    // One object per key, updated in place: what the lane has applied so far.
    const applied: {
      lastApplied: Position;
      lastId: string | undefined;
      earlierIds: readonly string[] | undefined;
    } = {
      lastApplied: record?.lastApplied ?? NO_POSITION,
      lastId: record?.lastId,
      earlierIds: record?.earlierIds,
    };
    let previousTs = record?.ts;
    for (let i = first; i !== -1; i = next[i]) {
      const event = events[i]!;
      const position = batch[i].position;
      if (alreadyApplied(applied, position, event.id)) {
        const last = isLastApplied(applied, position, event.id);
        if (last && steps !== undefined) {
          notes.echoes ??= [];
          notes.echoes.push(i, steps[steps.length - 1]);
          notes.redelivered++;
        } else if (last && record?.lastOutput) {
          results[i] = this.repeat(key, record, record.lastOutput, position);
          notes.redelivered++;
        } else {
          results[i] = { kind: 'duplicate', key, position };
          notes.duplicates++;
        }
        continue;
      }
      const expired =
        steps === undefined && record && this.expiry
          ? this.expiry.expiredOnArrival(record, event.ts)
          : undefined;
      // An expired or reset key starts a new sequence: its event has no previous one.
      const inputs = this.encode(
        batch[i],
        event,
        event.reset || expired !== undefined ? undefined : previousTs,
      );
      if ('kind' in inputs) {
        results[i] = inputs;
        continue;
      }
      encoded[i] = inputs;
      if (expired !== undefined && record) {
        notes.notify(i, expiredOutcome(key, record, expired));
        notes.expired++;
        record = undefined;
        // The expired state's ids went with it.
        applied.lastId = undefined;
        applied.earlierIds = undefined;
      }
      if (steps === undefined) steps = [i];
      else steps.push(i);
      applied.earlierIds = nextEarlierIds(applied.earlierIds, applied.lastId, event.id, this.idWindow);
      applied.lastApplied = position;
      applied.lastId = event.id;
      previousTs = event.ts;
    }
    if (steps === undefined) return undefined;
    return {
      key,
      steps,
      earlierIds: applied.earlierIds,
      initial: record?.state ?? this.zeroState,
      seq: record?.seq ?? 0,
      warmedFrom: record?.warmedFrom,
    };
  }

  /** Arrays to read `K` keys' states and outputs into: views of the read buffers, made once. */
  private readBuffers(K: number): ReadInto {
    if (this.readInto.states.length < K || this.readInto.outputs.length < K) {
      this.readStates.reserve(K);
      this.readOutputs.reserve(K);
      this.readInto = { states: this.readStates.views, outputs: this.readOutputs.views };
    }
    return this.readInto;
  }

  /** The prediction a key's stored state made for its last applied event, again. */
  private repeat(key: string, record: StateRecord, output: Float32Array, position: Position): Outcome {
    return {
      kind: 'prediction',
      prediction: this.decode({
        key,
        ts: record.ts,
        seq: record.seq,
        model: this.modelLabel,
        output: this.toNumbers(output, 0),
      }),
      position,
      redelivered: true,
    };
  }

  /**
   * One bounded step of the TTL sweep (`sweepPerEvent` keys per event of the batch, at most
   * `maxPerSweep`): stored keys, other than the batch's own (they were
   * checked on arrival), whose state has expired. Each is re-read, since the sweep walks a
   * snapshot that may predate later writes.
   */
  private async sweepIdle(
    events: number,
    inBatch: (key: string) => boolean,
  ): Promise<Array<readonly [string, StateRecord, string]>> {
    if (!this.sweep || !this.expiry) return [];
    const expiry = this.expiry;
    const candidates = (await this.sweep.next(expiry.sweepSize(events)))
      .filter(([key, record]) => !inBatch(key) && expiry.expiredIdle(record) !== undefined)
      .map(([key]) => key);
    if (candidates.length === 0) return [];
    const current = await this.store.getMany(candidates);
    const out: Array<readonly [string, StateRecord, string]> = [];
    candidates.forEach((key, i) => {
      const record = current[i];
      const reason = record && expiry.expiredIdle(record);
      if (record && reason !== undefined) out.push([key, record, reason]);
    });
    return out;
  }

  /**
   * Encodes event `i` for its step once its key's previous event time is known (the stored one,
   * or that of the key's last event applied earlier in the batch), keeping its inputs in
   * `encoded`; or says why it cannot be applied.
   */
  private encode(
    envelope: Envelope,
    event: Event,
    previousTs: number | undefined,
  ): Outcome | readonly ArrayLike<number>[] {
    try {
      // A single-input model's features go to the kernel as they are, once checked: a
      // Float32Array copy per event would only be copied again into the kernel's buffer.
      if (event.features !== undefined && this.inputSizes.length === 1) {
        checkFloat32Values(event.features, this.inputSizes[0], 'features');
        return [event.features];
      }
      return encodeInputs(this.model, event, this.encodeValues, previousTs);
    } catch (err) {
      return rejection(err, envelope.raw ?? JSON.stringify(event), envelope.position);
    }
  }

  /**
   * After a read of the batch's keys failed with `err`: when it is an error one key's record can
   * cause (it does not decode, it does not fit the cache), each key is read alone, and the keys
   * whose read fails that way get their error in place of a record, so that only their events are
   * rejected. Any other error — the store as a whole failing — fails the batch.
   */
  private async readApart(
    keys: readonly string[],
    into: ReadInto,
    err: unknown,
  ): Promise<(StateRecord | StateError | undefined)[]> {
    if (!isKeyStateError(err)) throw err;
    const out: (StateRecord | StateError | undefined)[] = new Array(keys.length);
    for (let k = 0; k < keys.length; k++) {
      try {
        const one = { states: [into.states[k]], outputs: [into.outputs[k]] };
        out[k] = (await this.store.getMany([keys[k]], one))[0];
      } catch (keyErr) {
        if (!isKeyStateError(keyErr)) throw keyErr;
        out[k] = keyErr;
      }
    }
    return out;
  }

  /**
   * The stored record if this model may continue from it; applies the mismatch policy otherwise.
   * A `StateError` (the key's record could not be read, another model wrote it under `refuse`, its
   * state has the wrong size) is the key's own: its events are rejected with it, the others go on.
   */
  private usable(
    key: string,
    record: StateRecord | StateError | undefined,
    firstIndex: number,
    notes: BatchNotes,
  ): StateRecord | StateError | undefined {
    if (!record || record instanceof StateError) return record;
    if (record.fingerprint === UNREADABLE_STATE_FINGERPRINT) {
      const reason = unreadableStateReason(key, record);
      if (this.onModelMismatch === 'refuse') {
        return new StateError(
          'STATE_CORRUPT',
          `${reason}; its events are refused: set onModelMismatch to 'reset' to start such keys afresh`,
        );
      }
      notes.notify(firstIndex, { kind: 'state-reset', key, reason });
      notes.stateResets++;
      return undefined;
    }
    if (record.fingerprint !== this.fingerprint) {
      const reason = `state of key '${key}' was written by model ${record.fingerprint.slice(0, 12)}, not by ${this.modelLabel} (${this.fingerprint.slice(0, 12)})`;
      if (this.onModelMismatch === 'refuse') {
        return new StateError(
          'STATE_MODEL_MISMATCH',
          `${reason}; the key's state is kept and its events are refused: set onModelMismatch to 'reset' to start such keys afresh, or reset the key`,
        );
      }
      notes.notify(firstIndex, { kind: 'state-reset', key, reason });
      notes.stateResets++;
      return undefined;
    }
    if (record.state.length !== this.stateSize) {
      return new StateError(
        'STATE_CORRUPT',
        `state of key '${key}' has ${record.state.length} values, the model's has ${this.stateSize}`,
      );
    }
    return record;
  }

  /**
   * Steps every lane through its events. Round r steps the r-th event of each lane that has one;
   * lanes are ordered longest first, so round r's lanes are a prefix of the state buffer and
   * `stepBatch` can update them in place. When every key has a lane and no lane is longer than
   * one before it (`lanesAreKeys` and in order: one event per key, as a rule), the lanes are the
   * keys in read order and are stepped right in the read buffer, where the store put their
   * states. Returns the records to write back.
   *
   * Typed arrays are reused across batches (see Scratch, Slots): the records' states and last
   * outputs are views into them, which is sound because every store copies what it is given (the
   * store contract tests it) and the next batch starts only after this one's records are written.
   */
  private stepLanes(
    lanes: Lane[],
    lanesAreKeys: boolean,
    batch: readonly Envelope[],
    events: readonly (Event | undefined)[],
    encoded: ReadonlyArray<readonly ArrayLike<number>[]>,
    results: Outcome[],
  ): Array<readonly [string, StateRecord]> {
    const L = lanes.length;
    if (L === 0) return [];
    const S = this.stateSize;
    const O = this.outputSize;
    let sorted = lanes;
    let inOrder = true;
    for (let j = 1; j < L && inOrder; j++) inOrder = lanes[j].steps.length <= lanes[j - 1].steps.length;
    if (!inOrder) sorted = [...lanes].sort((a, b) => b.steps.length - a.steps.length);
    const slots = inOrder && lanesAreKeys ? this.readStates : this.stepStates;
    slots.reserve(L);
    const buffer = slots.first(L);
    const views = slots.views;
    // A state read into its lane's place is there already.
    for (let j = 0; j < L; j++) if (sorted[j].initial !== views[j]) views[j].set(sorted[j].initial);
    this.lastOutputs.reserve(L);
    const lastOutputs = this.lastOutputs.first(L);
    const outputViews = this.lastOutputs.views;
    const sizes = this.inputSizes;
    const inputs = this.kernelInputs;

    let width = L;
    const rounds = sorted[0].steps.length;
    for (let round = 0; round < rounds; round++) {
      while (sorted[width - 1].steps.length <= round) width--;
      for (let m = 0; m < sizes.length; m++) inputs[m] = this.scratch.floats(INPUTS + m, width * sizes[m]);
      for (let j = 0; j < width; j++) {
        const lane = sorted[j];
        const i = lane.steps[round];
        if (events[i]!.reset) {
          buffer.set(this.zeroState, j * S);
          lane.seq = 0;
          lane.warmedFrom = undefined;
        }
        const x = encoded[i];
        for (let m = 0; m < sizes.length; m++) copyInto(inputs[m], j * sizes[m], x[m]);
      }
      // The outputs go straight to the lanes' last-output slots: the lanes whose last step this
      // was are a suffix of the round's, and later rounds write only a prefix of the slots, so
      // each lane's slot keeps the output of its last step, with no copy.
      const out = this.kernel.stepBatch(
        this.model,
        width === L ? buffer : buffer.subarray(0, width * S),
        inputs,
        width,
        lastOutputs,
      );
      for (let j = 0; j < width; j++) {
        const lane = sorted[j];
        const i = lane.steps[round];
        lane.seq += 1;
        const output = this.toNumbers(out, j * O);
        results[i] = {
          kind: 'prediction',
          prediction: this.decode({
            key: lane.key,
            ts: events[i]!.ts,
            seq: lane.seq,
            model: this.modelLabel,
            output,
          }),
          position: batch[i].position,
        };
      }
    }

    const updatedAt = this.now();
    const written = new Array<readonly [string, StateRecord]>(L);
    for (let j = 0; j < L; j++) {
      const lane = sorted[j];
      const i = lane.steps[lane.steps.length - 1];
      const event = events[i]!;
      // Built up rather than spread: conditional spreads cost an object clone each.
      const record: { -readonly [K in keyof StateRecord]: StateRecord[K] } = {
        seq: lane.seq,
        ts: event.ts,
        state: views[j],
        lastApplied: batch[i].position,
        fingerprint: this.fingerprint,
        updatedAt,
      };
      if (event.id !== undefined) record.lastId = event.id;
      if (lane.earlierIds !== undefined) record.earlierIds = lane.earlierIds;
      record.lastOutput = outputViews[j];
      if (lane.warmedFrom !== undefined) record.warmedFrom = lane.warmedFrom;
      written[j] = [lane.key, record];
    }
    return written;
  }

  /** An output's floats from `at`, as the plain numbers a prediction's output is. */
  private toNumbers(from: Float32Array, at: number): number[] {
    const out = this.outputTemplate.slice();
    for (let k = 0; k < out.length; k++) out[k] = from[at + k];
    return out;
  }
}

/** A store that answered at once needs no await, and no turn of the microtask queue (StoreAnswer). */
function isPromise<T>(answer: T | Promise<T>): answer is Promise<T> {
  return answer instanceof Promise;
}

/** Copies `values` into `into` from `at`: a loop, which beats `set` from a plain array of a few values. */
function copyInto(into: Float32Array, at: number, values: ArrayLike<number>): void {
  if (values instanceof Float32Array) {
    into.set(values, at);
    return;
  }
  for (let k = 0; k < values.length; k++) into[at + k] = values[k];
}

function expiredOutcome(key: string, record: StateRecord, reason: string): Outcome {
  return { kind: 'expired', key, lastTs: record.ts, seq: record.seq, reason };
}

/** Why a new key's events are refused when the store can add no more keys. */
function fullError(key: string): StateError {
  return new StateError(
    'STATE_FULL',
    `the state store holds as many keys as it may (state.maxKeys), so new key '${key.slice(0, 40)}' is not added and its events are refused; keys it holds go on: raise state.maxKeys, let idle keys expire (state.ttl), or use the LMDB store`,
  );
}

/** Store errors that belong to one key's record rather than to the store as a whole. */
const KEY_STATE_ERRORS: ReadonlySet<ErrorCode> = new Set(['STATE_CORRUPT', 'STATE_MODEL_MISMATCH']);

function isKeyStateError(err: unknown): err is StateError {
  return err instanceof StateError && KEY_STATE_ERRORS.has(err.code);
}

/** The `rejected` outcome of an event whose key's stored state cannot be used. */
function refusal(err: StateError, raw: string, position: Position): Outcome {
  return { kind: 'rejected', reason: err.message, code: err.code, raw, position };
}

/** The `rejected` outcome of an event error; anything else is not the event's fault and propagates. */
function rejection(err: unknown, raw: string, position: Position): Outcome {
  if (!(err instanceof EventError)) throw err;
  return { kind: 'rejected', reason: err.message, code: err.code, raw, position };
}
