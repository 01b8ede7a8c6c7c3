import { StateError } from '../errors.js';
import { checkInto, readRecord } from './readInto.js';
import { StateSlab } from './stateSlab.js';
import type { ReadInto, StateRecord, StateStore } from './types.js';

export interface CachedStoreOptions {
  /** The store that keeps every key; the cached store owns it and closes it. */
  readonly backing: StateStore;
  /** Most keys held in memory (`maxKeysInMemory`); the least recently used are dropped first. */
  readonly maxKeys: number;
  /** Floats per state, `stateSize(model)`. Records of another size are not cached, only passed through. */
  readonly stateSize: number;
  /** Floats of a record's `lastOutput`, `outputSize(model)`. Default 0. */
  readonly outputSize?: number;
  /** Slab chunk size, a power of two. Default the slab's. */
  readonly chunkSlots?: number;
}

/**
 * A `StateStore` that holds the most recently used keys' records in a `StateSlab` in front of a
 * backing (durable) store, so memory stays bounded however many keys the backing store has.
 * Keys a read does not find in memory are loaded with one `getMany` of the backing store per call.
 *
 * Writes go through: `putMany` resolves once the backing store has the records (durable, for a
 * durable backing store, as the engine's acknowledgements need), and only then are they cached,
 * clean. A write-back cache would have to be flushed at the end of every batch for the same
 * guarantee, so it would save nothing; and since nothing cached is ever newer than the backing
 * store, an evicted record can simply be dropped — no write-behind buffer is needed.
 *
 * Operations run one at a time, in call order, so a load finishing late cannot put an older
 * record over a newer write.
 */
export class CachedStore implements StateStore {
  private readonly backing: StateStore;
  private readonly slab: StateSlab;
  private tail: Promise<unknown> = Promise.resolve();
  private closing: Promise<void> | undefined;
  private readonly tally = { hits: 0, misses: 0 };

  /** The key limit of the store underneath. */
  get maxKeyBytes(): number | undefined {
    return this.backing.maxKeyBytes;
  }

  /** What the store underneath says of `key`. */
  keyError(key: string): StateError | undefined {
    return this.backing.keyError?.(key);
  }

  /** The cap of the store underneath, if it has one: the cache itself makes room by evicting. */
  freeKeys(): number {
    return this.backing.freeKeys?.() ?? Number.POSITIVE_INFINITY;
  }

  constructor(options: CachedStoreOptions) {
    this.backing = options.backing;
    this.slab = new StateSlab({
      stateSize: options.stateSize,
      outputSize: options.outputSize ?? 0,
      maxKeys: options.maxKeys,
      ...(options.chunkSlots === undefined ? {} : { chunkSlots: options.chunkSlots }),
    });
  }

  /** Keys held in memory now. */
  get cachedKeys(): number {
    return this.slab.size;
  }

  /** Reads served from memory and from the backing store, since the store was made. */
  get counts(): { readonly hits: number; readonly misses: number } {
    return { ...this.tally };
  }

  getMany(keys: readonly string[], into?: ReadInto): Promise<(StateRecord | undefined)[]> {
    return this.serial(async () => {
      checkInto(into, keys.length);
      const out: (StateRecord | undefined)[] = keys.map((key, i) => this.slab.get(key, into, i));
      const missing: number[] = [];
      out.forEach((record, i) => {
        if (!record) missing.push(i);
      });
      this.tally.hits += keys.length - missing.length;
      this.tally.misses += missing.length;
      if (missing.length === 0) return out;
      const loaded = await this.backing.getMany(missing.map((i) => keys[i]));
      missing.forEach((i, j) => {
        const record = loaded[j];
        out[i] = record && readRecord(record, into, i, true);
        if (record && this.slab.fits(record)) this.slab.set(keys[i], record, { dirty: false });
      });
      return out;
    });
  }

  putMany(entries: ReadonlyArray<readonly [string, StateRecord]>): Promise<void> {
    return this.serial(async () => {
      await this.backing.putMany(entries);
      for (const [key, record] of entries) {
        if (this.slab.fits(record)) this.slab.set(key, record, { dirty: false });
        else this.slab.delete(key);
      }
    });
  }

  deleteMany(keys: readonly string[]): Promise<void> {
    return this.serial(async () => {
      await this.backing.deleteMany(keys);
      for (const key of keys) this.slab.delete(key);
    });
  }

  /** The backing store's entries: it has every record the cache has, and no older one. */
  async *entries(into?: ReadInto): AsyncIterable<[string, StateRecord]> {
    this.checkOpen();
    yield* this.backing.entries(into);
  }

  size(): Promise<number> {
    return this.serial(() => this.backing.size());
  }

  /** Waits for operations in flight, then closes the backing store. Safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.tail.catch(() => {});
      await this.backing.close();
    })();
    return this.closing;
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(closed());
    const run = this.tail.then(op);
    this.tail = run.catch(() => {});
    return run;
  }

  private checkOpen(): void {
    if (this.closing) throw closed();
  }
}

function closed(): StateError {
  return new StateError('STATE_CLOSED', 'the cached state store is closed');
}
