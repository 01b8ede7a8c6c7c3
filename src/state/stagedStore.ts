import { StateError } from '../errors.js';
import { checkInto, readRecord } from './readInto.js';
import type { ReadInto, StateRecord, StateStore } from './types.js';

/** Writes held by a `StagedStore`: the latest record of each key written, and the keys deleted. */
export interface StagedChanges {
  readonly puts: ReadonlyArray<readonly [string, StateRecord]>;
  readonly deletes: readonly string[];
}

/**
 * A write-behind layer: writes are held in memory and read back from there until `clear()`, so
 * the engine can step a batch before anything of it is durable. The owner sends a batch's
 * predictions first, then makes `changes()` durable, then clears; a crash in between loses only
 * state that its redelivered events will recompute identically.
 */
export class StagedStore implements StateStore {
  /** key → its latest staged record, or `null` for a staged delete. */
  private readonly staged = new Map<string, StateRecord | null>();
  private closed = false;

  /** The key limit of the store underneath. */
  get maxKeyBytes(): number | undefined {
    return this.base.maxKeyBytes;
  }

  /** What the store underneath says of `key`. */
  keyError(key: string): StateError | undefined {
    return this.base.keyError?.(key);
  }

  constructor(readonly base: StateStore) {}

  async getMany(keys: readonly string[], into?: ReadInto): Promise<(StateRecord | undefined)[]> {
    this.checkOpen();
    checkInto(into, keys.length);
    // Nothing staged (a batch's first read): the base reads straight into `into`.
    if (this.staged.size === 0 && keys.length > 0) return this.base.getMany(keys, into);
    const missing = keys.filter((k) => !this.staged.has(k));
    const fromBase = missing.length > 0 ? await this.base.getMany(missing) : [];
    let next = 0;
    return keys.map((key, i) => {
      if (!this.staged.has(key)) {
        const record = fromBase[next++];
        return record && readRecord(record, into, i, true);
      }
      const record = this.staged.get(key);
      return record ? readRecord(record, into, i, false) : undefined;
    });
  }

  async putMany(entries: ReadonlyArray<readonly [string, StateRecord]>): Promise<void> {
    this.checkOpen();
    for (const [key, record] of entries) this.staged.set(key, readRecord(record, undefined, 0, false));
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    this.checkOpen();
    for (const key of keys) this.staged.set(key, null);
  }

  /** Everything written since the last `clear()`. */
  changes(): StagedChanges {
    const puts: Array<readonly [string, StateRecord]> = [];
    const deletes: string[] = [];
    for (const [key, record] of this.staged) {
      if (record) puts.push([key, record]);
      else deletes.push(key);
    }
    return { puts, deletes };
  }

  /** Forgets the staged writes: after they were made durable, or to fall back to the base's state. */
  clear(): void {
    this.staged.clear();
  }

  /** The base's entries with the staged writes laid over them. */
  async *entries(into?: ReadInto): AsyncIterable<[string, StateRecord]> {
    this.checkOpen();
    for await (const [key, record] of this.base.entries(into)) {
      this.checkOpen();
      if (!this.staged.has(key)) yield [key, record];
    }
    for (const [key, record] of [...this.staged]) {
      this.checkOpen();
      if (record) yield [key, readRecord(record, into, 0, false)];
    }
  }

  async size(): Promise<number> {
    this.checkOpen();
    const keys = [...this.staged.keys()];
    const inBase = (await this.base.getMany(keys)).filter((r) => r !== undefined).length;
    const staged = [...this.staged.values()].filter((r) => r !== null).length;
    return (await this.base.size()) - inBase + staged;
  }

  /** Closes the base; staged writes not yet made durable are dropped. */
  async close(): Promise<void> {
    this.closed = true;
    this.staged.clear();
    await this.base.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new StateError('STATE_CLOSED', 'the staged state store is closed');
  }
}
