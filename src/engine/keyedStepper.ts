import { EventError, StateError } from '../errors.js';
import { decodeEvent } from '../events/decode.js';
import type { Event, Position } from '../events/types.js';
import type { PredictionDecoder } from '../features/decodeOutput.js';
import { encodeInputs, type ValuesEncoder } from '../features/encodeInputs.js';
import { createState, modelFingerprint, outputSize, stateSize } from '../model/index.js';
import { type Kernel, selectKernel } from '../model/kernels/index.js';
import type { Model } from '../model/types.js';
import type { StateRecord, StateStore } from '../state/types.js';
import { lastPositions } from './commitPositions.js';
import { type ExpiryOptions, ExpiryPolicy } from './expiry.js';
import { alreadyApplied, isLastApplied } from './redelivery.js';
import { Scratch } from './scratch.js';
import { StoreSweep } from './storeSweep.js';
import type { Envelope, Outcome } from './types.js';

export interface KeyedStepperOptions {
  readonly model: Model;
  readonly store: StateStore;
  /** The predictions' `model` field; default `name@version`, the version defaulting to a fingerprint prefix. */
  readonly modelLabel?: string;
  /**
   * A stored state written by a model with another fingerprint: `'refuse'` (default) makes
   * `process` throw `StateError` `STATE_MODEL_MISMATCH`; `'reset'` discards it, reports a
   * `state-reset` outcome and starts the key afresh.
   */
  readonly onModelMismatch?: 'reset' | 'refuse';
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

/** An event that decoded and encoded, waiting for its step. */
/** An event that decoded, waiting for its encoding (which may need the key's previous `ts`). */
interface Accepted {
  readonly index: number;
  readonly event: Event;
  readonly position: Position;
  /** The text as received, for a rejection's dead-letter record. */
  readonly raw: string | undefined;
}

/** An event that decoded and encoded, waiting for its step. */
interface Encoded extends Accepted {
  readonly inputs: Float32Array[];
}

/** One key's work in a batch: the events to step, in order, and where its sequence stands. */
interface Lane {
  readonly key: string;
  readonly steps: Encoded[];
  seq: number;
  /** The head's output at the lane's last step, kept in the record for redeliveries. */
  lastOutput?: Float32Array;
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
  private readonly zeroState: Float32Array;
  private readonly emit: KeyedStepperOptions['emit'];
  private readonly onCommittable: KeyedStepperOptions['onCommittable'];
  private readonly now: () => number;
  private readonly expiry: ExpiryPolicy | undefined;
  private readonly sweep: StoreSweep | undefined;
  private readonly tally = { expired: 0, stateResets: 0, redelivered: 0, duplicates: 0 };
  private readonly kernel: Kernel;
  /** Buffers for stepLanes: 0 the lanes' states, 1 the kernel's outputs, 2 the last outputs, 3 + i input i. */
  private readonly scratch = new Scratch();
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
    this.zeroState = createState(options.model);
    this.emit = options.emit;
    this.onCommittable = options.onCommittable;
    this.now = options.now ?? Date.now;
    if (options.ttl) {
      this.expiry = new ExpiryPolicy(options.ttl, this.now);
      this.sweep = new StoreSweep(options.store, this.expiry.maxPerSweep);
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
    await this.tail;
    await this.sweep?.stop();
  }

  /**
   * Applies `batch` and resolves with what became of it, in batch order: one `prediction`,
   * `rejected` or `duplicate` per envelope, with a `state-reset` or `expired` before a key's
   * outcome when its stored state was discarded there, and the TTL sweep's `expired` outcomes
   * last. A redelivery of a key's last applied event repeats its prediction (`redelivered`).
   * Resolves only once the batch's state is durable in the store. Rejects (writing nothing) on
   * store, `emit` or model-mismatch errors; the state is then as before the batch.
   */
  process(batch: readonly Envelope[]): Promise<Outcome[]> {
    const run = this.tail.then(() => this.apply(batch));
    this.tail = run.catch(() => {});
    return run;
  }

  private async apply(batch: readonly Envelope[]): Promise<Outcome[]> {
    const results: Outcome[] = new Array(batch.length);
    const notices = new Map<number, Outcome[]>();
    const notify = (index: number, outcome: Outcome) => {
      const list = notices.get(index);
      if (list) list.push(outcome);
      else notices.set(index, [outcome]);
    };
    // Redeliveries, within the batch, of an event stepped earlier in it: [index, original index].
    const echoes: Array<[number, number]> = [];

    const byKey = new Map<string, Accepted[]>();
    batch.forEach((envelope, index) => {
      const accepted = this.accept(envelope, index);
      if ('kind' in accepted) {
        results[index] = accepted;
        return;
      }
      this.expiry?.observe(accepted.event.ts);
      const list = byKey.get(accepted.event.key);
      if (list) list.push(accepted);
      else byKey.set(accepted.event.key, [accepted]);
    });

    const keys = [...byKey.keys()];
    const records = keys.length > 0 ? await this.store.getMany(keys) : [];
    const lanes: Lane[] = [];
    const states: Float32Array[] = [];
    keys.forEach((key, k) => {
      const events = byKey.get(key)!;
      const record = this.usable(key, records[k], events[0].index, notify);
      const planned = this.plan(key, events, record, results, echoes, notify);
      if (planned) {
        lanes.push(planned.lane);
        states.push(planned.state);
      }
    });

    const written = this.stepLanes(lanes, states, results);
    for (const [index, original] of echoes) {
      const first = results[original];
      if (first.kind !== 'prediction')
        throw new Error('internal: a redelivery echoes a step without a prediction');
      results[index] = { ...first, position: batch[index].position, redelivered: true };
    }
    // Without a TTL there is nothing to sweep, and no reason to take a turn of the microtask queue.
    const swept = this.sweep ? await this.sweepIdle(byKey) : [];

    const outcomes: Outcome[] = [];
    results.forEach((outcome, index) => {
      const before = notices.get(index);
      if (before) outcomes.push(...before);
      outcomes.push(outcome);
    });
    outcomes.push(...swept.map(([key, record, reason]) => expiredOutcome(key, record, reason)));

    if (this.emit) await this.emit(outcomes);
    if (written.length > 0) await this.store.putMany(written);
    if (swept.length > 0) await this.store.deleteMany(swept.map(([key]) => key));
    this.count(outcomes);
    if (this.onCommittable) await this.onCommittable(lastPositions(batch.map((e) => e.position)));
    return outcomes;
  }

  /**
   * Sorts one key's events of the batch into those to step (its lane, starting from `state`) and
   * redeliveries, whose outcomes it fills in: the last applied event's prediction repeated
   * (from the record, or echoing a step earlier in the batch), or a `duplicate`. Expires the
   * stored state on the first event to step when it is past its TTL.
   */
  private plan(
    key: string,
    events: readonly Accepted[],
    stored: StateRecord | undefined,
    results: Outcome[],
    echoes: Array<[number, number]>,
    notify: (index: number, outcome: Outcome) => void,
  ): { lane: Lane; state: Float32Array } | undefined {
    let record = stored;
    const lane: Lane = { key, steps: [], seq: 0 };
    let applied = {
      lastApplied: record?.lastApplied ?? ({ kind: 'none' } as Position),
      lastId: record?.lastId,
    };
    let previousTs = record?.ts;
    for (const a of events) {
      if (alreadyApplied(applied, a.position, a.event.id)) {
        const last = isLastApplied(applied, a.position, a.event.id);
        const stepped = lane.steps[lane.steps.length - 1];
        if (last && stepped) {
          echoes.push([a.index, stepped.index]);
        } else if (last && record?.lastOutput) {
          results[a.index] = this.repeat(key, record, record.lastOutput, a.position);
        } else {
          results[a.index] = { kind: 'duplicate', key, position: a.position };
        }
        continue;
      }
      const expired =
        lane.steps.length === 0 && record && this.expiry
          ? this.expiry.expiredOnArrival(record, a.event.ts)
          : undefined;
      // An expired or reset key starts a new sequence: its event has no previous one.
      const encoded = this.encode(a, a.event.reset || expired !== undefined ? undefined : previousTs);
      if ('kind' in encoded) {
        results[a.index] = encoded;
        continue;
      }
      if (expired !== undefined && record) {
        notify(a.index, expiredOutcome(key, record, expired));
        record = undefined;
      }
      lane.steps.push(encoded);
      applied = { lastApplied: a.position, lastId: a.event.id };
      previousTs = a.event.ts;
    }
    if (lane.steps.length === 0) return undefined;
    lane.seq = record?.seq ?? 0;
    return { lane, state: record?.state ?? this.zeroState };
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
        output: Array.from(output),
      }),
      position,
      redelivered: true,
    };
  }

  /**
   * One bounded step of the TTL sweep: stored keys, other than the batch's own (they were
   * checked on arrival), whose state has expired. Each is re-read, since the sweep walks a
   * snapshot that may predate later writes.
   */
  private async sweepIdle(
    batchKeys: ReadonlyMap<string, unknown>,
  ): Promise<Array<readonly [string, StateRecord, string]>> {
    if (!this.sweep || !this.expiry) return [];
    const expiry = this.expiry;
    const candidates = (await this.sweep.next())
      .filter(([key, record]) => !batchKeys.has(key) && expiry.expiredIdle(record) !== undefined)
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

  private count(outcomes: readonly Outcome[]): void {
    for (const o of outcomes) {
      if (o.kind === 'expired') this.tally.expired++;
      else if (o.kind === 'state-reset') this.tally.stateResets++;
      else if (o.kind === 'duplicate') this.tally.duplicates++;
      else if (o.kind === 'prediction' && o.redelivered) this.tally.redelivered++;
    }
  }

  /** Decodes one envelope, or says why it cannot be applied. */
  private accept(envelope: Envelope, index: number): Accepted | Outcome {
    try {
      const event = envelope.event ?? decodeEvent(envelope.raw);
      return { index, event, position: envelope.position, raw: envelope.raw };
    } catch (err) {
      return rejection(err, envelope.raw ?? JSON.stringify(envelope.event), envelope.position);
    }
  }

  /**
   * Encodes a decoded event once its key's previous event time is known (the stored one, or that
   * of the key's last event applied earlier in the batch), or says why it cannot be applied.
   */
  private encode(a: Accepted, previousTs: number | undefined): Encoded | Outcome {
    try {
      const inputs = encodeInputs(this.model, a.event, this.encodeValues, previousTs);
      // Spelled out: a spread costs an object clone per event, a few % of the engine's time.
      return { index: a.index, event: a.event, position: a.position, raw: a.raw, inputs };
    } catch (err) {
      return rejection(err, a.raw ?? JSON.stringify(a.event), a.position);
    }
  }

  /** The stored record if this model may continue from it; applies the mismatch policy otherwise. */
  private usable(
    key: string,
    record: StateRecord | undefined,
    firstIndex: number,
    notify: (index: number, outcome: Outcome) => void,
  ): StateRecord | undefined {
    if (!record) return undefined;
    if (record.fingerprint !== this.fingerprint) {
      const reason = `state of key '${key}' was written by model ${record.fingerprint.slice(0, 12)}, not by ${this.modelLabel} (${this.fingerprint.slice(0, 12)})`;
      if (this.onModelMismatch === 'refuse') {
        throw new StateError(
          'STATE_MODEL_MISMATCH',
          `${reason}; set onModelMismatch to 'reset' to start such keys afresh`,
        );
      }
      notify(firstIndex, { kind: 'state-reset', key, reason });
      return undefined;
    }
    if (record.state.length !== this.stateSize) {
      throw new StateError(
        'STATE_CORRUPT',
        `state of key '${key}' has ${record.state.length} values, the model's has ${this.stateSize}`,
      );
    }
    return record;
  }

  /**
   * Steps every lane through its events. Round r steps the r-th event of each lane that has one;
   * lanes are ordered longest first, so round r's lanes are a prefix of the state buffer and
   * `stepBatch` can update them in place. Returns the records to write back.
   *
   * Typed arrays are reused across batches (see Scratch): the records' states and last outputs
   * are views into them, which is sound because every store copies what it is given (the store
   * contract tests it) and the next batch starts only after this one's records are written.
   */
  private stepLanes(
    lanes: Lane[],
    initial: Float32Array[],
    results: Outcome[],
  ): Array<readonly [string, StateRecord]> {
    if (lanes.length === 0) return [];
    const S = this.stateSize;
    const O = this.outputSize;
    const order = lanes.map((_, i) => i);
    if (lanes.length > 1) order.sort((a, b) => lanes[b].steps.length - lanes[a].steps.length);
    const sorted = order.map((i) => lanes[i]);
    const buffer = this.scratch.floats(0, sorted.length * S);
    const lastOutputs = this.scratch.floats(2, sorted.length * O);
    for (let j = 0; j < order.length; j++) buffer.set(initial[order[j]], j * S);
    const sizes = this.model.inputs.map((input) => input.size);

    let width = sorted.length;
    for (let round = 0; round < sorted[0].steps.length; round++) {
      while (sorted[width - 1].steps.length <= round) width--;
      const inputs = sizes.map((size, m) => this.scratch.floats(3 + m, width * size));
      for (let j = 0; j < width; j++) {
        const lane = sorted[j];
        const a = lane.steps[round];
        if (a.event.reset) {
          buffer.set(this.zeroState, j * S);
          lane.seq = 0;
        }
        for (let m = 0; m < sizes.length; m++) inputs[m].set(a.inputs[m], j * sizes[m]);
      }
      const out = this.kernel.stepBatch(
        this.model,
        width === sorted.length ? buffer : buffer.subarray(0, width * S),
        inputs,
        width,
        this.scratch.floats(1, width * O),
      );
      for (let j = 0; j < width; j++) {
        const lane = sorted[j];
        const a = lane.steps[round];
        lane.seq += 1;
        const output = new Array<number>(O);
        for (let k = 0; k < O; k++) output[k] = out[j * O + k];
        if (round === lane.steps.length - 1) {
          for (let k = 0; k < O; k++) lastOutputs[j * O + k] = output[k];
          lane.lastOutput = sorted.length === 1 ? lastOutputs : lastOutputs.subarray(j * O, (j + 1) * O);
        }
        results[a.index] = {
          kind: 'prediction',
          prediction: this.decode({
            key: lane.key,
            ts: a.event.ts,
            seq: lane.seq,
            model: this.modelLabel,
            output,
          }),
          position: a.position,
        };
      }
    }

    const updatedAt = this.now();
    return sorted.map((lane, j) => {
      const last = lane.steps[lane.steps.length - 1];
      // Built up rather than spread: conditional spreads cost an object clone each.
      const record: { -readonly [K in keyof StateRecord]: StateRecord[K] } = {
        seq: lane.seq,
        ts: last.event.ts,
        state: sorted.length === 1 ? buffer : buffer.subarray(j * S, (j + 1) * S),
        lastApplied: last.position,
        fingerprint: this.fingerprint,
        updatedAt,
      };
      if (last.event.id !== undefined) record.lastId = last.event.id;
      if (lane.lastOutput !== undefined) record.lastOutput = lane.lastOutput;
      return [lane.key, record] as const;
    });
  }
}

function expiredOutcome(key: string, record: StateRecord, reason: string): Outcome {
  return { kind: 'expired', key, lastTs: record.ts, seq: record.seq, reason };
}

/** The `rejected` outcome of an event error; anything else is not the event's fault and propagates. */
function rejection(err: unknown, raw: string, position: Position): Outcome {
  if (!(err instanceof EventError)) throw err;
  return { kind: 'rejected', reason: err.message, code: err.code, raw, position };
}
