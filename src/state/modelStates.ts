import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, open, type RootDatabase } from 'lmdb';
import { toBufferKey } from 'ordered-binary';
import { ConfigError, StateError } from '../errors.js';
import { MemoryStateStore } from './memoryStore.js';
import { checkInto } from './readInto.js';
import { decodeStateRecord, encodeStateRecord } from './recordCodec.js';
import type { ReadInto, StateRecord, StateStore } from './types.js';

/**
 * Which model answers, persisted with the state so that a switch survives a crash: written in the
 * same LMDB transaction as the states of the batch at which it takes effect.
 */
export interface RolloutMeta {
  /** Name of the model whose predictions answer events. */
  readonly primary: string;
  /** Events stepped so far, over every run: the position of the next event. */
  readonly events: number;
  /** Every switch, oldest first: from event position `at` on, `primary` answered instead of `previous`. */
  readonly switches: ReadonlyArray<{
    readonly at: number;
    readonly primary: string;
    readonly previous: string;
    readonly time: string;
  }>;
}

/** The sub-directory of `state.path` holding the namespaces of several models. */
export const MODELS_DIR = 'models';
/** Named LMDB databases: one per model, and one for the rollout's own record. */
const NAMESPACE_PREFIX = 'model:';
const META_DB = 'rollout';
const META_KEY = 'meta';
/** Most models one state directory holds (LMDB opens named databases up to a fixed number). */
export const MAX_MODELS = 32;

/** A model name fit to be a namespace: it is a database name and a metric label. */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$/;

/**
 * The per-model state namespaces of one state directory, and the record of which model is primary.
 * Every model's `StateStore` is a namespace of one storage, so that one batch's writes of every
 * model (and a switch taking effect at that batch) are one transaction: `stage` collects them,
 * `commit` writes them. Outside `stage`, a namespace's writes are durable when they resolve, as
 * any store's are (the `warm` command writes this way).
 */
export interface ModelStates {
  /** The state of model `name`, created empty when new. */
  store(name: string): NamespaceStore;
  /** The persisted switch record, or undefined before the first. */
  readMeta(): RolloutMeta | undefined;
  /** From now until `commit`, namespaces' writes are collected instead of written. */
  stage(): void;
  /** Writes everything collected since `stage`, with `meta`, as one transaction; durable on resolving. */
  commit(meta: RolloutMeta | undefined): Promise<void>;
  /** Forgets what the namespace `name` collected since `stage` (its model's batch failed). */
  discard(name: string): void;
  close(): Promise<void>;
}

export interface NamespaceStore extends StateStore {
  readonly name: string;
}

type Write = { readonly key: string; readonly bytes: Buffer | undefined };

/** The LMDB `ModelStates`: named databases `model:<name>` and `rollout` in `<state.path>/models`. */
export class LmdbModelStates implements ModelStates {
  readonly path: string;
  private root: RootDatabase<Buffer, string> | undefined;
  private readonly meta: Database<RolloutMeta, string>;
  private readonly stores = new Map<string, LmdbNamespace>();
  private staged: Map<string, Write[]> | undefined;
  private closing: Promise<void> | undefined;

  constructor(path: string) {
    this.path = path;
    mkdirSync(path, { recursive: true });
    this.root = open<Buffer, string>({
      path,
      noSubdir: false,
      encoding: 'binary',
      maxDbs: MAX_MODELS + 1,
      separateFlushed: true,
      noSync: false,
      noMetaSync: false,
    });
    this.meta = this.root.openDB<RolloutMeta, string>({ name: META_DB, encoding: 'json' });
  }

  store(name: string): LmdbNamespace {
    checkModelName(name);
    let store = this.stores.get(name);
    if (!store) {
      const db = this.live().openDB<Buffer, string>({ name: NAMESPACE_PREFIX + name, encoding: 'binary' });
      store = new LmdbNamespace(name, db, this);
      this.stores.set(name, store);
    }
    return store;
  }

  /** The models that have a namespace here, and how many keys each holds. */
  async namespaces(): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    // The environment's main database lists its named ones.
    for (const dbName of this.live().getKeys()) {
      if (typeof dbName !== 'string' || !dbName.startsWith(NAMESPACE_PREFIX)) continue;
      const name = dbName.slice(NAMESPACE_PREFIX.length);
      found.set(name, await this.store(name).size());
    }
    return found;
  }

  readMeta(): RolloutMeta | undefined {
    this.live();
    return this.meta.get(META_KEY);
  }

  stage(): void {
    this.staged = new Map();
  }

  /** Collects a namespace's writes while staging; false when not staging (the caller writes). */
  collect(name: string, writes: Write[]): boolean {
    if (!this.staged) return false;
    const list = this.staged.get(name);
    if (list) list.push(...writes);
    else this.staged.set(name, writes);
    return true;
  }

  discard(name: string): void {
    this.staged?.delete(name);
  }

  async commit(meta: RolloutMeta | undefined): Promise<void> {
    const staged = this.staged ?? new Map<string, Write[]>();
    this.staged = undefined;
    const root = this.live();
    const dbs = [...staged.keys()].map((name) => this.store(name).db);
    const lists = [...staged.values()];
    await this.write(
      root.batch(() => {
        for (let d = 0; d < lists.length; d++) applyWrites(dbs[d], lists[d]);
        if (meta) this.meta.put(META_KEY, meta);
      }),
    );
  }

  /** Waits for the transaction and for its flush to disk. */
  async write(done: Promise<boolean>): Promise<void> {
    const flushed = (done as Promise<boolean> & { flushed?: PromiseLike<unknown> }).flushed;
    await Promise.all([done, flushed]);
  }

  /** @internal The open environment (its lmdb type stays out of the package's declarations). */
  live(): RootDatabase<Buffer, string> {
    if (!this.root) throw new StateError('STATE_CLOSED', `LMDB model states at ${this.path} are closed`);
    return this.root;
  }

  close(): Promise<void> {
    if (!this.closing) {
      const root = this.root;
      this.root = undefined;
      this.closing = (async () => {
        await root?.close();
      })();
    }
    return this.closing;
  }
}

function applyWrites(db: Database<Buffer, string>, writes: readonly Write[]): void {
  for (const w of writes) {
    if (w.bytes === undefined) db.remove(w.key);
    else db.put(w.key, w.bytes);
  }
}

/** One model's namespace in `LmdbModelStates`: a `StateStore` like `LmdbStore`, on a named database. */
export class LmdbNamespace implements NamespaceStore {
  readonly maxKeyBytes: number;
  /** @internal The named database (its lmdb type stays out of the package's declarations). */
  readonly db: Database<Buffer, string>;

  /** @internal Made by `LmdbModelStates.store`. */
  constructor(
    readonly name: string,
    db: Database<Buffer, string>,
    private readonly owner: LmdbModelStates,
  ) {
    this.db = db;
    this.maxKeyBytes = (owner.live() as unknown as { maxKeySize?: number }).maxKeySize ?? 1978;
  }

  async getMany(keys: readonly string[], into?: ReadInto): Promise<(StateRecord | undefined)[]> {
    this.owner.live();
    checkInto(into, keys.length);
    const fits = keys.map((k) => this.fits(k));
    const values = await this.db.getMany(keys.filter((_, i) => fits[i]));
    let next = 0;
    return keys.map((key, i) => {
      const bytes = fits[i] ? values[next++] : undefined;
      return bytes === undefined ? undefined : decodeStateRecord(bytes, key, into, i);
    });
  }

  async putMany(entries: ReadonlyArray<readonly [string, StateRecord]>): Promise<void> {
    this.owner.live();
    if (entries.length === 0) return;
    // Encoded now: the engine reuses the arrays it passes once the write has resolved.
    const writes = entries.map(([key, record]) => {
      const err = this.keyError(key);
      if (err) throw err;
      return { key, bytes: encodeStateRecord(record) };
    });
    await this.writeOrStage(writes);
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    this.owner.live();
    const writes = keys.filter((k) => this.fits(k)).map((key) => ({ key, bytes: undefined }));
    if (writes.length > 0) await this.writeOrStage(writes);
  }

  async *entries(into?: ReadInto): AsyncIterableIterator<[string, StateRecord]> {
    for (const { key, value } of this.db.getRange({ snapshot: true })) {
      this.owner.live();
      yield [key, decodeStateRecord(value, key, into, 0)];
    }
  }

  async size(): Promise<number> {
    this.owner.live();
    return (this.db.getStats() as { entryCount: number }).entryCount;
  }

  /** The namespace closes with its `ModelStates`. */
  async close(): Promise<void> {}

  keyError(key: string): StateError | undefined {
    if (this.fits(key)) return undefined;
    return new StateError(
      'STATE_KEY_TOO_LONG',
      `entity key '${key.slice(0, 40)}…' (${key.length} characters) is longer than LMDB's ${this.maxKeyBytes}-byte key limit`,
    );
  }

  private fits(key: string): boolean {
    return key.length * 3 + 1 <= this.maxKeyBytes || toBufferKey(key).length <= this.maxKeyBytes;
  }

  private async writeOrStage(writes: Write[]): Promise<void> {
    if (this.owner.collect(this.name, writes)) return;
    await this.owner.write(this.owner.live().batch(() => applyWrites(this.db, writes)));
  }
}

/**
 * `ModelStates` in memory (`state.store: memory`): a bounded `MemoryStateStore` per model; nothing
 * survives the process, so staging buys nothing and writes go straight to each store.
 */
export class MemoryModelStates implements ModelStates {
  private readonly stores = new Map<string, NamespaceStore>();
  private meta: RolloutMeta | undefined;

  constructor(private readonly maxKeys: number) {}

  store(name: string): NamespaceStore {
    checkModelName(name);
    let store = this.stores.get(name);
    if (!store) {
      store = Object.assign(new MemoryStateStore({ maxKeys: this.maxKeys }), { name });
      this.stores.set(name, store);
    }
    return store;
  }

  readMeta(): RolloutMeta | undefined {
    return this.meta;
  }

  stage(): void {}

  async commit(meta: RolloutMeta | undefined): Promise<void> {
    if (meta) this.meta = meta;
  }

  discard(): void {}

  async close(): Promise<void> {
    for (const store of this.stores.values()) await store.close();
  }
}

function checkModelName(name: string): void {
  if (!MODEL_NAME_PATTERN.test(name)) {
    throw new ConfigError(
      `model name '${name}' cannot name a state namespace: use 1 to 100 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit`,
    );
  }
}

/** The directory of the model namespaces under a `state.path`. */
export function modelStatesPath(statePath: string): string {
  return join(statePath, MODELS_DIR);
}

/** The part of the configuration that says where state lives (`Config['state']` fits). */
export interface StateLocation {
  readonly store: 'lmdb' | 'memory';
  readonly path: string;
  readonly maxKeys: number;
}

/** The model namespaces `state` describes: LMDB under `<state.path>/models`, or in memory. */
export function openModelStates(state: StateLocation): ModelStates {
  return state.store === 'memory'
    ? new MemoryModelStates(state.maxKeys)
    : new LmdbModelStates(modelStatesPath(state.path));
}

/**
 * The state store of the model named `name` (a `models[].name`, or a model's `name@version` when
 * its entry has no name), as `serve` with several models reads and writes it: for a command that
 * fills a model's state before it serves (warm start). Its records carry the fingerprint of the
 * model that wrote them, as every store's do. Writes are durable when they resolve; `close`
 * closes the storage it opened. LMDB allows other processes on the same directory, so this may run
 * beside `serve`, but only one of them should write a given namespace.
 */
export async function openModelStore(
  config: { readonly state: StateLocation },
  name: string,
): Promise<StateStore> {
  if (config.state.store === 'memory') {
    throw new ConfigError('state.store is memory: a model namespace outside serve would be lost; use lmdb');
  }
  const states = new LmdbModelStates(modelStatesPath(config.state.path));
  const store = states.store(name);
  return Object.assign(Object.create(store) as LmdbNamespace, { close: () => states.close() });
}
