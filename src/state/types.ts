import type { StateError } from '../errors.js';
import type { Position } from '../events/types.js';

/**
 * The fingerprint of a stand-in record: a restore from the changelog found this key's record
 * unreadable (it does not decode), so the key's state is unknown. Its `lastApplied` says where the
 * bad record is (changelog topic, partition, offset). The engine treats the key as one whose state
 * it cannot continue from (see `KeyedStepperOptions.onModelMismatch`), never as a new key.
 */
export const UNREADABLE_STATE_FINGERPRINT = 'cellstream:unreadable-changelog-record';

/** Why the state of `key`, whose record is an unreadable-record stand-in, is unknown. */
export function unreadableStateReason(key: string, record: StateRecord): string {
  const at = record.lastApplied;
  const where = at.kind === 'offset' ? ` (${at.topic} partition ${at.partition} offset ${at.offset})` : '';
  return `state of key '${key}' is unknown: its changelog record${where} did not decode when the state was restored`;
}

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
  /**
   * Ids of events applied before the last one, oldest first (record v3): with `lastId`, the
   * key's last N applied ids (the engine's `idWindow`), so a resent event among them is a
   * duplicate, not stepped again. Absent or empty when there are none.
   */
  readonly earlierIds?: readonly string[];
  /** The fingerprint of the model that wrote this state. */
  readonly fingerprint: string;
  /**
   * The head's output for the last applied event (record v2), so that a redelivery of that event
   * repeats its prediction identically instead of losing it.
   */
  readonly lastOutput?: Float32Array;
  /** Wall-clock ms when the state was last written (record v2), for processing-time TTL. */
  readonly updatedAt?: number;
  /**
   * How many events the key's state was derived from when a warm start computed it from history
   * (record v4; `warmKeys`, `cellstream warm`). Kept by later steps of the same sequence, so a
   * warmed key still says where its state came from; absent for keys that were never warmed, and
   * dropped when the sequence starts over (a `reset` event, expiry, a mismatch reset).
   */
  readonly warmedFrom?: number;
}

/**
 * Arrays of the caller's that `getMany` copies the states and last outputs it finds into, so
 * that a read allocates no arrays of its own: the engine reads a batch's states straight into
 * the buffer it steps (these are views of it, made once). A typed array of more than 64 bytes is
 * allocated outside V8's heap, at about the cost of an LSTM step at H=64, and even a view costs
 * an allocation, so a read that allocated per record would cost a good part of a step.
 */
export interface ReadInto {
  /** Where the state of `keys[i]`'s record goes: `states[i]`, if it has as many floats. At least `keys.length` arrays. */
  readonly states: readonly Float32Array[];
  /** Where the `lastOutput` of `keys[i]`'s record goes: `outputs[i]`, likewise. At least `keys.length` arrays. */
  readonly outputs: readonly Float32Array[];
}

/**
 * A store's answer: a promise, or the value itself when the store has it at hand (the in-memory
 * store), which spares the caller a turn of the microtask queue per batch (~0.1 µs each, a tenth
 * of a step). Callers `await` it either way. A failure is always a rejected promise, never a throw.
 */
export type StoreAnswer<T> = T | Promise<T>;

/**
 * Where per-key state lives. Batched and asynchronous so that durable and remote stores fit;
 * caching, metrics and changelogging are wrappers around a store, not engine code.
 */
export interface StateStore {
  /**
   * Longest key the store can index, in bytes of its key encoding, when it has a limit (LMDB:
   * 1978). The engine refuses key limits (`events.maxKeyBytes`) this cannot hold.
   */
  readonly maxKeyBytes?: number | undefined;
  /**
   * Why the store can never hold `key` (too long to index, a reserved name), or `undefined`.
   * The engine asks before it steps an event, so that such a key rejects its own events instead
   * of failing the write of a whole batch. Optional: a store that takes every key leaves it out.
   */
  keyError?(key: string): StateError | undefined;
  /**
   * How many keys the store can still add, for a store with a cap on its keys (the in-memory
   * store under `whenFull: 'refuse'`). The engine asks once per batch, before it steps, and
   * refuses the events of new keys beyond it (`STATE_FULL`), each as its own outcome, so a full
   * store does not fail the writes of keys it holds. Optional: a store without a cap leaves it
   * out; a store that grows with its file (LMDB) is full only when its disk is, which fails every
   * write alike (see docs/state.md).
   */
  freeKeys?(): number;
  /**
   * Records for `keys`, `undefined` where a key has none; same order as `keys`. The caller owns
   * every array of the records returned. With `into`, the `state` of `keys[i]`'s record, when it
   * has as many floats as `into.states[i]`, is copied into that array, which is the record's
   * `state`; the same for `lastOutput` and `into.outputs[i]`. Arrays of other sizes are the
   * records' own. `into` with fewer arrays than `keys` is a `RangeError`.
   */
  getMany(keys: readonly string[], into?: ReadInto): StoreAnswer<(StateRecord | undefined)[]>;
  /** Writes all entries; durable (for durable stores) when the answer resolves. */
  putMany(entries: ReadonlyArray<readonly [string, StateRecord]>): StoreAnswer<void>;
  deleteMany(keys: readonly string[]): Promise<void>;
  /**
   * Every record once. With `into`, each record's state that has as many floats as
   * `into.states[0]` is copied into that array, and its `lastOutput` likewise into
   * `into.outputs[0]`, each entry overwriting the one before: for a caller that keeps only the
   * records' other fields (the TTL sweep), spared an allocation per record.
   */
  entries(into?: ReadInto): AsyncIterable<[string, StateRecord]>;
  size(): Promise<number>;
  /** Safe to call more than once. */
  close(): Promise<void>;
}
