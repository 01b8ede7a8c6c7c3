import { StateError } from '../errors.js';
import type { StateRecord, StateStore } from './types.js';

export interface MemoryStoreOptions {
  /** Most keys held at once. Default 1,000,000. */
  readonly maxKeys?: number;
  /**
   * What a write of a new key does when `maxKeys` keys are held:
   * - `'refuse'` (default): the whole `putMany` throws `StateError` `STATE_FULL` and writes nothing,
   *   because dropping a key's state would silently restart its sequence.
   * - `'evict-lru'`: the least recently read or written keys are dropped to make room, and
   *   `onEvict` is told which. Only for a cache in front of a store that keeps everything.
   */
  readonly whenFull?: 'refuse' | 'evict-lru';
  /** Called with each key evicted under `'evict-lru'`. */
  readonly onEvict?: (key: string, record: StateRecord) => void;
}

/**
 * A bounded `StateStore` in process memory; state is lost when the process ends. State vectors
 * are copied in and out, so neither writers nor readers share memory with the store.
 */
export class MemoryStateStore implements StateStore {
  // A Map iterates in insertion order; re-inserting on access keeps the least recently used first.
  private readonly records = new Map<string, StateRecord>();
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

  async getMany(keys: readonly string[]): Promise<(StateRecord | undefined)[]> {
    this.checkOpen();
    return keys.map((key) => {
      const record = this.records.get(key);
      if (!record) return undefined;
      if (this.whenFull === 'evict-lru') this.touch(key, record);
      return copy(record);
    });
  }

  async putMany(entries: ReadonlyArray<readonly [string, StateRecord]>): Promise<void> {
    this.checkOpen();
    const fresh = new Set(entries.map(([key]) => key).filter((key) => !this.records.has(key)));
    const overflow = this.records.size + fresh.size - this.maxKeys;
    if (overflow > 0) {
      if (this.whenFull === 'refuse' || fresh.size > this.maxKeys) {
        throw new StateError(
          'STATE_FULL',
          `the in-memory state store holds its maximum of ${this.maxKeys} keys and cannot add ${fresh.size} more`,
        );
      }
      this.evict(overflow, new Set(entries.map(([key]) => key)));
    }
    for (const [key, record] of entries) {
      this.records.delete(key);
      this.records.set(key, copy(record));
    }
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    this.checkOpen();
    for (const key of keys) this.records.delete(key);
  }

  async *entries(): AsyncIterable<[string, StateRecord]> {
    this.checkOpen();
    // A snapshot, so writes during iteration neither skip nor repeat keys.
    for (const [key, record] of [...this.records.entries()]) {
      this.checkOpen();
      yield [key, copy(record)];
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

  private touch(key: string, record: StateRecord): void {
    this.records.delete(key);
    this.records.set(key, record);
  }

  /** Drops the `n` least recently used keys, sparing those about to be written. */
  private evict(n: number, spare: ReadonlySet<string>): void {
    for (const [key, record] of this.records) {
      if (n === 0) break;
      if (spare.has(key)) continue;
      this.records.delete(key);
      n--;
      this.onEvict?.(key, record);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new StateError('STATE_CLOSED', 'the in-memory state store is closed');
  }
}

function copy(record: StateRecord): StateRecord {
  const copied = { ...record, state: record.state.slice() };
  return record.lastOutput === undefined ? copied : { ...copied, lastOutput: record.lastOutput.slice() };
}
