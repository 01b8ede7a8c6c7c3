import { EventError, StateError } from '../errors.js';
import { decodeEvent } from '../events/decode.js';
import type { Event, Position } from '../events/types.js';
import { encodeInputs, type ValuesEncoder } from '../features/encodeInputs.js';
import { createState, modelFingerprint, outputSize, stateSize } from '../model/index.js';
import { type Kernel, selectKernel } from '../model/kernels/index.js';
import type { Model } from '../model/types.js';
import type { StateRecord, StateStore } from '../state/types.js';
import { alreadyApplied } from './redelivery.js';
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
  /** The step implementation; default `selectKernel()` (wasm SIMD where available, CELLSTREAM_KERNEL overrides). */
  readonly kernel?: Kernel;
}

/** An event that decoded and encoded, waiting for its step. */
interface Accepted {
  readonly index: number;
  readonly event: Event;
  readonly inputs: Float32Array[];
  readonly position: Position;
}

/** One key's work in a batch: the events to step, in order, and where its sequence stands. */
interface Lane {
  readonly key: string;
  readonly steps: Accepted[];
  seq: number;
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
  private readonly stateSize: number;
  private readonly outputSize: number;
  private readonly zeroState: Float32Array;
  private readonly kernel: Kernel;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(options: KeyedStepperOptions) {
    this.model = options.model;
    this.store = options.store;
    this.fingerprint = modelFingerprint(options.model);
    this.modelLabel =
      options.modelLabel ?? `${options.model.name}@${options.model.version ?? this.fingerprint.slice(0, 8)}`;
    this.onModelMismatch = options.onModelMismatch ?? 'refuse';
    this.encodeValues = options.encodeValues;
    this.stateSize = stateSize(options.model);
    this.outputSize = outputSize(options.model);
    this.zeroState = createState(options.model);
    this.kernel = options.kernel ?? selectKernel();
  }

  /**
   * Applies `batch` and resolves with what became of it, in batch order: one `prediction`,
   * `rejected` or `duplicate` per envelope, with a `state-reset` before a key's first outcome
   * when its stored state was discarded. Rejects (writing nothing) on store or model-mismatch
   * errors; the state is then as before the batch.
   */
  process(batch: readonly Envelope[]): Promise<Outcome[]> {
    const run = this.tail.then(() => this.apply(batch));
    this.tail = run.catch(() => {});
    return run;
  }

  private async apply(batch: readonly Envelope[]): Promise<Outcome[]> {
    const results: Outcome[] = new Array(batch.length);
    const notices = new Map<number, Outcome>();

    const byKey = new Map<string, Accepted[]>();
    batch.forEach((envelope, index) => {
      const accepted = this.accept(envelope, index);
      if ('kind' in accepted) {
        results[index] = accepted;
        return;
      }
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
      const record = this.usable(key, records[k], events[0].index, notices);
      const lane: Lane = { key, steps: [], seq: record?.seq ?? 0 };
      let applied = {
        lastApplied: record?.lastApplied ?? ({ kind: 'none' } as Position),
        lastId: record?.lastId,
      };
      for (const a of events) {
        if (alreadyApplied(applied, a.position, a.event.id)) {
          results[a.index] = { kind: 'duplicate', key, position: a.position };
        } else {
          lane.steps.push(a);
          applied = { lastApplied: a.position, lastId: a.event.id };
        }
      }
      if (lane.steps.length > 0) {
        lanes.push(lane);
        states.push(record?.state ?? this.zeroState);
      }
    });

    const written = this.stepLanes(lanes, states, results);
    if (written.length > 0) await this.store.putMany(written);

    const outcomes: Outcome[] = [];
    results.forEach((outcome, index) => {
      const notice = notices.get(index);
      if (notice) outcomes.push(notice);
      outcomes.push(outcome);
    });
    return outcomes;
  }

  /** Decodes and encodes one envelope, or says why it cannot be applied. */
  private accept(envelope: Envelope, index: number): Accepted | Outcome {
    try {
      const event = envelope.event ?? decodeEvent(envelope.raw);
      const inputs = encodeInputs(this.model, event, this.encodeValues);
      return { index, event, inputs, position: envelope.position };
    } catch (err) {
      if (!(err instanceof EventError)) throw err;
      return {
        kind: 'rejected',
        reason: err.message,
        code: err.code,
        raw: envelope.raw ?? JSON.stringify(envelope.event),
        position: envelope.position,
      };
    }
  }

  /** The stored record if this model may continue from it; applies the mismatch policy otherwise. */
  private usable(
    key: string,
    record: StateRecord | undefined,
    firstIndex: number,
    notices: Map<number, Outcome>,
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
      notices.set(firstIndex, { kind: 'state-reset', key, reason });
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
   */
  private stepLanes(
    lanes: Lane[],
    initial: Float32Array[],
    results: Outcome[],
  ): Array<readonly [string, StateRecord]> {
    if (lanes.length === 0) return [];
    const S = this.stateSize;
    const O = this.outputSize;
    const order = lanes.map((_, i) => i).sort((a, b) => lanes[b].steps.length - lanes[a].steps.length);
    const sorted = order.map((i) => lanes[i]);
    const buffer = new Float32Array(sorted.length * S);
    order.forEach((i, j) => {
      buffer.set(initial[i], j * S);
    });

    let width = sorted.length;
    for (let round = 0; round < sorted[0].steps.length; round++) {
      while (sorted[width - 1].steps.length <= round) width--;
      const inputs = this.model.inputs.map((input) => new Float32Array(width * input.size));
      for (let j = 0; j < width; j++) {
        const lane = sorted[j];
        const a = lane.steps[round];
        if (a.event.reset) {
          buffer.set(this.zeroState, j * S);
          lane.seq = 0;
        }
        a.inputs.forEach((x, m) => {
          inputs[m].set(x, j * this.model.inputs[m].size);
        });
      }
      const out = this.kernel.stepBatch(this.model, buffer.subarray(0, width * S), inputs, width);
      for (let j = 0; j < width; j++) {
        const lane = sorted[j];
        const a = lane.steps[round];
        lane.seq += 1;
        results[a.index] = {
          kind: 'prediction',
          prediction: {
            key: lane.key,
            ts: a.event.ts,
            seq: lane.seq,
            model: this.modelLabel,
            output: Array.from(out.subarray(j * O, (j + 1) * O)),
          },
          position: a.position,
        };
      }
    }

    return sorted.map((lane, j) => {
      const last = lane.steps[lane.steps.length - 1];
      const record: StateRecord = {
        seq: lane.seq,
        ts: last.event.ts,
        state: buffer.slice(j * S, (j + 1) * S),
        lastApplied: last.position,
        ...(last.event.id === undefined ? {} : { lastId: last.event.id }),
        fingerprint: this.fingerprint,
      };
      return [lane.key, record] as const;
    });
  }
}
