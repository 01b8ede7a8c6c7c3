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
 * Where per-key state lives. Batched and asynchronous so that durable and remote stores fit;
 * caching, metrics and changelogging are wrappers around a store, not engine code.
 */
export interface StateStore {
  /** Records for `keys`, `undefined` where a key has none; same order as `keys`. */
  getMany(keys: readonly string[]): Promise<(StateRecord | undefined)[]>;
  /** Writes all entries; durable (for durable stores) when the promise resolves. */
  putMany(entries: ReadonlyArray<readonly [string, StateRecord]>): Promise<void>;
  deleteMany(keys: readonly string[]): Promise<void>;
  entries(): AsyncIterable<[string, StateRecord]>;
  size(): Promise<number>;
  /** Safe to call more than once. */
  close(): Promise<void>;
}
