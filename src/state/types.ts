import type { Position } from '../events/types.js';

/** One key's persisted recurrent state and what produced it. */
export interface StateRecord {
  /** Steps applied in the key's current sequence. */
  readonly seq: number;
  /** Event time of the last applied event, ms. */
  readonly ts: number;
  /** Every layer's h (and c) of every branch, laid out as `stateLayout(model)` says. */
  readonly state: Float32Array;
  /** What was applied last, to recognise redeliveries. */
  readonly lastApplied: Position;
  /** Id of the last applied event, when events carry ids. */
  readonly lastId?: string;
  /** The fingerprint of the model that wrote this state. */
  readonly fingerprint: string;
  /**
   * The head's output for the last applied event (record v2), so that a redelivery of that event
   * repeats its prediction identically instead of losing it.
   */
  readonly lastOutput?: Float32Array;
  /** Wall-clock ms when the state was last written (record v2), for processing-time TTL. */
  readonly updatedAt?: number;
}

/**
 * Buffers of the caller's that `getMany` copies the states and last outputs it finds into, so
 * that a read allocates no arrays of its own: the engine reads a batch's states straight into
 * the buffer it steps. A typed array of more than 64 bytes is allocated outside V8's heap, at
 * about the cost of an LSTM step at H=64, so a read that allocated per record would cost as
 * much as the step itself.
 */
export interface ReadInto {
  /** Floats per state: the state of `keys[i]` goes to `states` from `i × stateSize`. */
  readonly stateSize: number;
  /** At least `keys.length × stateSize` floats. */
  readonly states: Float32Array;
  /** Floats per last output: the `lastOutput` of `keys[i]` goes to `outputs` from `i × outputSize`. */
  readonly outputSize: number;
  /** At least `keys.length × outputSize` floats. */
  readonly outputs: Float32Array;
}

/**
 * Where per-key state lives. Batched and asynchronous so that durable and remote stores fit;
 * caching, metrics and changelogging are wrappers around a store, not engine code.
 */
export interface StateStore {
  /**
   * Records for `keys`, `undefined` where a key has none; same order as `keys`. The caller owns
   * every array of the records returned. With `into`, the `state` of `keys[i]`'s record, when it
   * has `into.stateSize` floats, is copied to key i's place in `into.states` and is a view of that
   * place; the same for `lastOutput` with `into.outputSize`. Arrays of other sizes are the
   * records' own. `into` too small for `keys` is a `RangeError`.
   */
  getMany(keys: readonly string[], into?: ReadInto): Promise<(StateRecord | undefined)[]>;
  /** Writes all entries; durable (for durable stores) when the promise resolves. */
  putMany(entries: ReadonlyArray<readonly [string, StateRecord]>): Promise<void>;
  deleteMany(keys: readonly string[]): Promise<void>;
  entries(): AsyncIterable<[string, StateRecord]>;
  size(): Promise<number>;
  /** Safe to call more than once. */
  close(): Promise<void>;
}
