import { mkdirSync } from 'node:fs';
import { open, type RootDatabase } from 'lmdb';
import { toBufferKey } from 'ordered-binary';
import { StateError } from '../errors.js';
import { checkInto } from './readInto.js';
import { decodeStateRecord, encodeStateRecord } from './recordCodec.js';
import type { ReadInto, StateRecord, StateStore } from './types.js';

export interface LmdbStoreOptions {
  /** Directory of the database (`data.mdb`, `lock.mdb`); created when missing. */
  readonly path: string;
  /**
   * Initial size of the memory map in bytes. Default: unset, lmdb starts small and grows the
   * map as the file grows, so no size has to be guessed up front.
   */
  readonly mapSize?: number;
  /**
   * LZ4-compress records larger than lmdb's threshold (1000 bytes). Default `false`: states
   * are float32 noise that hardly compresses, and a database must always be reopened with the
   * setting it was created with.
   */
  readonly compression?: boolean;
  /**
   * Default `false`: every commit fsyncs inside the transaction, the classic LMDB guarantee.
   * `true` lets lmdb fsync after the commit, overlapping with the next transaction; `putMany`
   * still waits for that flush, so durability is the same and only concurrent writers gain.
   */
  readonly overlappingSync?: boolean;
}

/**
 * The embedded durable `StateStore`: one LMDB environment in a directory, entity key → the
 * bytes of `encodeStateRecord`. Each `putMany`/`deleteMany` is one LMDB transaction, and its
 * promise resolves only after that transaction is flushed to disk (lmdb's `noSync` and
 * `noMetaSync` stay off), so it survives `kill -9` and, as far as the disk honours fsync,
 * power loss. Reads are served from the memory map.
 */
export class LmdbStore implements StateStore {
  readonly path: string;
  /** Longest key the store can hold, in bytes of lmdb's key encoding (about UTF-8 length + 1). */
  readonly maxKeyBytes: number;
  private db: RootDatabase<Buffer, string> | undefined;
  private closing: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<unknown>>();

  private constructor(options: LmdbStoreOptions) {
    this.path = options.path;
    mkdirSync(options.path, { recursive: true });
    this.db = open<Buffer, string>({
      path: options.path,
      // Treat the path as a directory even when its name has a dot in it.
      noSubdir: false,
      encoding: 'binary',
      compression: options.compression ?? false,
      overlappingSync: options.overlappingSync ?? false,
      // Lets every write promise carry the promise of its flush to disk, whichever sync mode.
      separateFlushed: true,
      noSync: false,
      noMetaSync: false,
      ...(options.mapSize === undefined ? {} : { mapSize: options.mapSize }),
    });
    this.maxKeyBytes = (this.db as unknown as { maxKeySize?: number }).maxKeySize ?? 1978;
  }

  /**
   * Opens (creating if needed) the store in `options.path`. File-system and lmdb errors (no
   * permission, not an LMDB file, no prebuilt binding for this platform) pass through as they are.
   */
  static async open(options: LmdbStoreOptions): Promise<LmdbStore> {
    return new LmdbStore(options);
  }

  async getMany(keys: readonly string[], into?: ReadInto): Promise<(StateRecord | undefined)[]> {
    const db = this.live();
    checkInto(into, keys.length);
    // A key too long to store cannot be present; asking lmdb would throw.
    const fits = keys.map((k) => this.fits(k));
    const values = await this.track(db.getMany(keys.filter((_, i) => fits[i])));
    let next = 0;
    return keys.map((key, i) => {
      const bytes = fits[i] ? values[next++] : undefined;
      return bytes === undefined ? undefined : decodeStateRecord(bytes, key, into, i);
    });
  }

  async putMany(entries: ReadonlyArray<readonly [string, StateRecord]>): Promise<void> {
    const db = this.live();
    if (entries.length === 0) return;
    // Encode and check everything before the first put, so a bad entry fails the whole batch
    // without leaving half a transaction queued in lmdb.
    const encoded = entries.map(([key, record]) => {
      this.checkKey(key);
      return encodeStateRecord(record);
    });
    await this.commit(
      db.batch(() => {
        for (let i = 0; i < entries.length; i++) db.put(entries[i][0], encoded[i]);
      }),
    );
  }

  /**
   * Like `putMany`, with each record already in the bytes of `encodeStateRecord`: the changelog
   * store's, which it sent to Kafka, so a record is encoded once for both.
   */
  async putEncoded(entries: ReadonlyArray<readonly [string, Uint8Array]>): Promise<void> {
    const db = this.live();
    if (entries.length === 0) return;
    for (const [key] of entries) this.checkKey(key);
    await this.commit(
      db.batch(() => {
        for (const [key, bytes] of entries) db.put(key, bytes as Buffer);
      }),
    );
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    const db = this.live();
    const storable = keys.filter((k) => this.fits(k));
    if (storable.length === 0) return;
    await this.commit(
      db.batch(() => {
        for (const key of storable) db.remove(key);
      }),
    );
  }

  /** Every record once, from one read snapshot taken when iteration starts; ordered by key bytes. */
  async *entries(into?: ReadInto): AsyncIterableIterator<[string, StateRecord]> {
    const range = this.live().getRange({ snapshot: true })[Symbol.iterator]();
    let done = false;
    try {
      while (!done) {
        // Checked before each step: advancing a cursor of a closed environment is not safe.
        this.live();
        const step = range.next();
        done = step.done === true;
        if (!done) yield [step.value.key, decodeStateRecord(step.value.value, step.value.key, into, 0)];
      }
    } finally {
      if (!done && this.db) range.return?.();
    }
  }

  async size(): Promise<number> {
    const stats = this.live().getStats() as { entryCount: number };
    return stats.entryCount;
  }

  /** Waits for writes in flight, then closes the environment. Safe to call more than once. */
  close(): Promise<void> {
    if (!this.closing) {
      const db = this.db;
      this.db = undefined;
      this.closing = (async () => {
        await Promise.allSettled(this.inFlight);
        await db?.close();
      })();
    }
    return this.closing;
  }

  private live(): RootDatabase<Buffer, string> {
    if (!this.db) throw new StateError('STATE_CLOSED', `LMDB state store at ${this.path} is closed`);
    return this.db;
  }

  private fits(key: string): boolean {
    // Three bytes per UTF-16 unit plus lmdb's escape byte bounds the encoding; only long keys pay for an exact check.
    return key.length * 3 + 1 <= this.maxKeyBytes || toBufferKey(key).length <= this.maxKeyBytes;
  }

  /** `STATE_KEY_TOO_LONG` for a key too long to index, else `undefined`. */
  keyError(key: string): StateError | undefined {
    if (this.fits(key)) return undefined;
    return new StateError(
      'STATE_KEY_TOO_LONG',
      `entity key '${key.slice(0, 40)}…' (${key.length} characters) is longer than LMDB's ` +
        `${this.maxKeyBytes}-byte key limit`,
    );
  }

  private checkKey(key: string): void {
    const err = this.keyError(key);
    if (err) throw err;
  }

  private async commit(write: Promise<boolean>): Promise<void> {
    const flushed = (write as Promise<boolean> & { flushed?: PromiseLike<unknown> }).flushed;
    await this.track(Promise.all([write, flushed]));
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    const forget = () => this.inFlight.delete(p);
    p.then(forget, forget);
    return p;
  }
}
