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
 *
 * Held across several batches it is a record cache: a key written many times keeps only its
 * latest record, so making the changes durable writes each key once. Writes are tagged with the
 * `group` current when they are made (the Kafka pipeline's input partition), so that one group's
 * changes can be made durable, or dropped, apart from the others'.
 */
export class StagedStore implements StateStore {
  /** key → its latest staged record, or `null` for a staged delete. */
  private readonly staged = new Map<string, StateRecord | null>();
  /** The keys each group staged; a key belongs to the group that wrote it last. */
  private readonly groups = new Map<number, Set<string>>();
  private readonly groupOfKey = new Map<string, number>();
  /** The group writes are tagged with from now on. */
  group = 0;
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
    const missing: string[] = [];
    // The base decodes straight into the caller's buffers of the keys it reads, as when nothing is staged.
    const baseInto: ReadInto | undefined = into ? { states: [], outputs: [] } : undefined;
    for (let i = 0; i < keys.length; i++) {
      if (this.staged.has(keys[i])) continue;
      missing.push(keys[i]);
      if (baseInto && into) {
        (baseInto.states as Float32Array[]).push(into.states[i]);
        (baseInto.outputs as Float32Array[]).push(into.outputs[i]);
      }
    }
    const fromBase = missing.length > 0 ? await this.base.getMany(missing, baseInto) : [];
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
    const keys = this.keysOf(this.group);
    for (const [key, record] of entries) {
      this.tag(key, keys);
      this.staged.set(key, readRecord(record, undefined, 0, false));
    }
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    this.checkOpen();
    const held = this.keysOf(this.group);
    for (const key of keys) {
      this.tag(key, held);
      this.staged.set(key, null);
    }
  }

  /** Keys staged and not yet cleared (of `group`, when given). */
  stagedKeys(group?: number): number {
    return group === undefined ? this.staged.size : (this.groups.get(group)?.size ?? 0);
  }

  /** Everything written since the last `clear()` (of `group`, when given), each key once. */
  changes(group?: number): StagedChanges {
    const puts: Array<readonly [string, StateRecord]> = [];
    const deletes: string[] = [];
    const keys = group === undefined ? this.staged.keys() : (this.groups.get(group) ?? []);
    for (const key of keys) {
      const record = this.staged.get(key);
      if (record) puts.push([key, record]);
      else deletes.push(key);
    }
    return { puts, deletes };
  }

  /**
   * Forgets the staged writes (of `group`, when given): after they were made durable, or to fall
   * back to the base's state.
   */
  clear(group?: number): void {
    if (group === undefined) {
      this.staged.clear();
      this.groups.clear();
      this.groupOfKey.clear();
      return;
    }
    const keys = this.groups.get(group);
    if (!keys) return;
    for (const key of keys) {
      this.staged.delete(key);
      this.groupOfKey.delete(key);
    }
    this.groups.delete(group);
  }

  private keysOf(group: number): Set<string> {
    let keys = this.groups.get(group);
    if (!keys) {
      keys = new Set();
      this.groups.set(group, keys);
    }
    return keys;
  }

  /** Moves `key` into the group whose set is `keys` (the current one). */
  private tag(key: string, keys: Set<string>): void {
    const was = this.groupOfKey.get(key);
    if (was === this.group) return;
    if (was !== undefined) this.groups.get(was)?.delete(key);
    this.groupOfKey.set(key, this.group);
    keys.add(key);
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
    this.clear();
    await this.base.close();
  }

  private checkOpen(): void {
    if (this.closed) throw new StateError('STATE_CLOSED', 'the staged state store is closed');
  }
}
