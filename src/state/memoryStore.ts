import { StateError } from '../errors.js';
import { checkInto, readRecord } from './readInto.js';
import type { ReadInto, StateRecord, StateStore, StoreAnswer } from './types.js';

export interface MemoryStoreOptions {
  /** Most keys held at once. Default 1,000,000. */
  readonly maxKeys?: number;
  /**
   * What a write of a new key does when `maxKeys` keys are held:
   * - `'refuse'` (default): the whole `putMany` throws `StateError` `STATE_FULL` and writes nothing,
   *   because dropping a key's state would silently restart its sequence. The engine asks
   *   `freeKeys` first and refuses only the new keys' events, so it never gets there.
   * - `'evict-lru'`: the least recently read or written keys are dropped to make room, and
   *   `onEvict` is told which. Only for a cache in front of a store that keeps everything.
   */
  readonly whenFull?: 'refuse' | 'evict-lru';
  /** Called with each key evicted under `'evict-lru'`. */
  readonly onEvict?: (key: string, record: StateRecord) => void;
}

/** A record as the store holds it: every field present (absent ones `undefined`), overwritten in place. */
interface Held {
  seq: number;
  ts: number;
  state: Float32Array;
  lastApplied: StateRecord['lastApplied'];
  lastId: string | undefined;
  earlierIds: readonly string[] | undefined;
  fingerprint: string;
  lastOutput: Float32Array | undefined;
  updatedAt: number | undefined;
  warmedFrom: number | undefined;
}

/**
 * A bounded `StateStore` in process memory; state is lost when the process ends. State vectors
 * are copied in and out, so neither writers nor readers share memory with the store.
 */
export class MemoryStateStore implements StateStore {
  // A Map iterates in insertion order; re-inserting on access keeps the least recently used first.
  private readonly records = new Map<string, Held>();
  private readonly maxKeys: number;
  private readonly whenFull: 'refuse' | 'evict-lru';
  private readonly onEvict: ((key: string, record: StateRecord) => void) | undefined;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    const maxKeys = options.maxKeys ?? 1_000_000;
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
    }
    this.maxKeys = maxKeys;
    this.whenFull = options.whenFull ?? 'refuse';
    this.onEvict = options.onEvict;
  }

  /**
   * Keys that can still be added: under `'refuse'` the keys left below `maxKeys`; under
   * `'evict-lru'` as many as one write can hold, since it evicts others to make room for them.
   */
  freeKeys(): number {
    this.checkOpen();
    return this.whenFull === 'refuse' ? this.maxKeys - this.records.size : this.maxKeys;
  }

  // getMany and putMany answer at once (see StoreAnswer); their failures are still rejections.
  getMany(keys: readonly string[], into?: ReadInto): StoreAnswer<(StateRecord | undefined)[]> {
    try {
      this.checkOpen();
      checkInto(into, keys.length);
      const lru = this.whenFull === 'evict-lru';
      const out = new Array<StateRecord | undefined>(keys.length);
      for (let i = 0; i < keys.length; i++) {
        const held = this.records.get(keys[i]);
        if (held !== undefined && lru) this.touch(keys[i], held);
        out[i] = held === undefined ? undefined : readRecord(held as StateRecord, into, i, false);
      }
      return out;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  putMany(entries: ReadonlyArray<readonly [string, StateRecord]>): StoreAnswer<void> {
    try {
      this.checkOpen();
      // However many keys are new, the store cannot overflow below this: no need to count them.
      if (this.records.size + entries.length > this.maxKeys) this.makeRoom(entries);
      const lru = this.whenFull === 'evict-lru';
      for (const [key, record] of entries) {
        const held = this.records.get(key);
        if (held === undefined) {
          this.records.set(key, hold(record));
        } else {
          overwrite(held, record);
          if (lru) this.touch(key, held);
        }
      }
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    this.checkOpen();
    for (const key of keys) this.records.delete(key);
  }

  async *entries(into?: ReadInto): AsyncIterable<[string, StateRecord]> {
    this.checkOpen();
    // A snapshot of the keys, so writes during iteration neither skip nor repeat keys.
    for (const [key, held] of [...this.records.entries()]) {
      this.checkOpen();
      yield [key, readRecord(held as StateRecord, into, 0, false)];
    }
  }

  async size(): Promise<number> {
    this.checkOpen();
    return this.records.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.records.clear();
  }

  /** Refuses a write that would pass `maxKeys`, or evicts to make room for it. */
  private makeRoom(entries: ReadonlyArray<readonly [string, StateRecord]>): void {
    const fresh = new Set(entries.map(([key]) => key).filter((key) => !this.records.has(key)));
    const overflow = this.records.size + fresh.size - this.maxKeys;
    if (overflow <= 0) return;
    if (this.whenFull === 'refuse' || fresh.size > this.maxKeys) {
      throw new StateError(
        'STATE_FULL',
        `the in-memory state store holds its maximum of ${this.maxKeys} keys and cannot add ${fresh.size} more`,
      );
    }
    this.evict(overflow, new Set(entries.map(([key]) => key)));
  }

  private touch(key: string, held: Held): void {
    this.records.delete(key);
    this.records.set(key, held);
  }

  /** Drops the `n` least recently used keys, sparing those about to be written. */
  private evict(n: number, spare: ReadonlySet<string>): void {
    for (const [key, held] of this.records) {
      if (n === 0) break;
      if (spare.has(key)) continue;
      this.records.delete(key);
      n--;
      this.onEvict?.(key, readRecord(held as StateRecord, undefined, 0, false));
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new StateError('STATE_CLOSED', 'the in-memory state store is closed');
  }
}

/**
 * A copy of `record` to hold, its state and lastOutput in one new array. A typed array of more
 * than 64 bytes is allocated outside V8's heap, at about the cost of an LSTM step at H=64, so a
 * new key costs one allocation and an overwrite (see `overwrite`) none.
 */
function hold(record: StateRecord): Held {
  const { state, lastOutput } = record;
  let ownState: Float32Array;
  let ownOutput: Float32Array | undefined;
  if (lastOutput === undefined) {
    ownState = state.slice();
  } else {
    const both = new Float32Array(state.length + lastOutput.length);
    both.set(state);
    both.set(lastOutput, state.length);
    ownState = both.subarray(0, state.length);
    ownOutput = both.subarray(state.length);
  }
  return {
    seq: record.seq,
    ts: record.ts,
    state: ownState,
    lastApplied: record.lastApplied,
    lastId: record.lastId,
    earlierIds: record.earlierIds,
    fingerprint: record.fingerprint,
    lastOutput: ownOutput,
    updatedAt: record.updatedAt,
    warmedFrom: record.warmedFrom,
  };
}

/** Writes `record` over `held`, into its arrays where they fit, else into new ones. */
function overwrite(held: Held, record: StateRecord): void {
  const { state, lastOutput } = record;
  if (held.state.length === state.length && held.lastOutput?.length === lastOutput?.length) {
    held.state.set(state);
    if (lastOutput !== undefined) held.lastOutput!.set(lastOutput);
  } else {
    const fresh = hold(record);
    held.state = fresh.state;
    held.lastOutput = fresh.lastOutput;
  }
  held.seq = record.seq;
  held.ts = record.ts;
  held.lastApplied = record.lastApplied;
  held.lastId = record.lastId;
  held.earlierIds = record.earlierIds;
  held.fingerprint = record.fingerprint;
  held.updatedAt = record.updatedAt;
  held.warmedFrom = record.warmedFrom;
}
