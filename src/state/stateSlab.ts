import { ConfigError, StateError } from '../errors.js';
import type { Position } from '../events/types.js';
import type { ReadInto, StateRecord } from './types.js';

export interface StateSlabOptions {
  /** Floats per key's state, `stateSize(model)`. */
  readonly stateSize: number;
  /** Floats of a record's `lastOutput`, `outputSize(model)`. Default 0: records keep no output. */
  readonly outputSize?: number;
  /** Most keys held at once; adding one more evicts the least recently used. */
  readonly maxKeys: number;
  /** Slots per chunk, a power of two; memory grows one chunk at a time. Default 4096. */
  readonly chunkSlots?: number;
}

/** A key pushed out of the slab, with its state, for the caller to persist before forgetting. */
export interface EvictedState {
  readonly key: string;
  readonly record: StateRecord;
  /** Changed since it was last marked clean: the durable store does not have this version yet. */
  readonly dirty: boolean;
}

const NONE = -1;
const KIND_NONE = 0;
const KIND_OFFSET_NUMBER = 1;
const KIND_OFFSET_STRING = 2;
const KIND_LINE = 3;
const KIND_MASK = 3;
const DIRTY = 4;
const HAS_OUTPUT = 8;
const HAS_UPDATED_AT = 16;

/** Columns for `chunkSlots` slots; slot `i` of the chunk owns `state[i*stateSize, (i+1)*stateSize)`. */
class Chunk {
  readonly state: Float32Array;
  /** Slot `i` owns `output[i*outputSize, (i+1)*outputSize)`: the record's `lastOutput`. */
  readonly output: Float32Array;
  readonly seq: Float64Array;
  readonly ts: Float64Array;
  readonly updatedAt: Float64Array;
  /** offset: partition; line: line number. */
  readonly posA: Float64Array;
  /** offset: the offset when it is a safe integer. */
  readonly posB: Float64Array;
  /** Interned topic or file. */
  readonly posSource: Int32Array;
  readonly fingerprint: Int32Array;
  /** Position kind, the dirty bit, and which optional fields the record has. */
  readonly flags: Uint8Array;
  readonly prev: Int32Array;
  readonly next: Int32Array;
  readonly keys: (string | undefined)[];

  constructor(slots: number, stateSize: number, outputSize: number) {
    this.state = new Float32Array(slots * stateSize);
    this.output = new Float32Array(slots * outputSize);
    this.seq = new Float64Array(slots);
    this.ts = new Float64Array(slots);
    this.updatedAt = new Float64Array(slots);
    this.posA = new Float64Array(slots);
    this.posB = new Float64Array(slots);
    this.posSource = new Int32Array(slots);
    this.fingerprint = new Int32Array(slots);
    this.flags = new Uint8Array(slots);
    this.prev = new Int32Array(slots);
    this.next = new Int32Array(slots);
    this.keys = new Array<string | undefined>(slots).fill(undefined);
  }
}

/** Strings seen often (topics, files, fingerprints) stored once, referred to by number. */
class Interner {
  private readonly ids = new Map<string, number>();
  private readonly strings: string[] = [];

  id(s: string): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.strings.length;
      this.strings.push(s);
      this.ids.set(s, id);
    }
    return id;
  }

  string(id: number): string {
    return this.strings[id];
  }
}

/**
 * Many keys' recurrent states packed in chunked typed arrays, least recently used evicted
 * first. Per key it costs the state's bytes plus about 50 bytes of columns, the key string
 * and one `Map` entry, instead of a `Float32Array`, a record and a position object per key.
 *
 * Eviction never drops state silently: `set` of a new key into a full slab returns the
 * evicted key's record (and whether it is dirty). The caller must keep that record readable
 * — e.g. in a write-behind buffer consulted before the durable store — until it is durable.
 * Topics, files and fingerprints are interned for the slab's lifetime; there are few of them.
 */
export class StateSlab {
  readonly stateSize: number;
  readonly outputSize: number;
  readonly maxKeys: number;
  private readonly chunkBits: number;
  private readonly chunkMask: number;
  private readonly chunks: Chunk[] = [];
  private readonly index = new Map<string, number>();
  private readonly free: number[] = [];
  private allocated = 0;
  /** Least recently used end of the LRU list. */
  private oldest = NONE;
  private newest = NONE;
  private readonly sources = new Interner();
  private readonly fingerprints = new Interner();
  // Rare per-key strings live outside the columns so that keys without them pay nothing.
  private readonly lastIds = new Map<number, string>();
  private readonly earlierIds = new Map<number, readonly string[]>();
  // Only warmed keys have it (record v4), and a warm start writes each key once.
  private readonly warmedFrom = new Map<number, number>();
  private readonly bigOffsets = new Map<number, string>();

  constructor(options: StateSlabOptions) {
    const chunkSlots = options.chunkSlots ?? 4096;
    const outputSize = options.outputSize ?? 0;
    if (!Number.isInteger(options.stateSize) || options.stateSize < 0) {
      throw new ConfigError(`slab stateSize must be a non-negative integer, got ${options.stateSize}`);
    }
    if (!Number.isInteger(outputSize) || outputSize < 0) {
      throw new ConfigError(`slab outputSize must be a non-negative integer, got ${outputSize}`);
    }
    if (!Number.isInteger(options.maxKeys) || options.maxKeys < 1) {
      throw new ConfigError(`maxKeysInMemory must be a positive integer, got ${options.maxKeys}`);
    }
    if (!Number.isInteger(chunkSlots) || chunkSlots < 1 || (chunkSlots & (chunkSlots - 1)) !== 0) {
      throw new ConfigError(`slab chunkSlots must be a power of two, got ${chunkSlots}`);
    }
    this.stateSize = options.stateSize;
    this.outputSize = outputSize;
    this.maxKeys = options.maxKeys;
    this.chunkBits = Math.log2(chunkSlots);
    this.chunkMask = chunkSlots - 1;
  }

  /** Keys held. */
  get size(): number {
    return this.index.size;
  }

  has(key: string): boolean {
    return this.index.has(key);
  }

  /**
   * A copy of the key's record, marking the key most recently used; with `into`, its state and
   * output are copied into its arrays for key `index`, as `StateStore.getMany` says.
   */
  get(key: string, into?: ReadInto, index = 0): StateRecord | undefined {
    const slot = this.index.get(key);
    if (slot === undefined) return undefined;
    this.touch(slot);
    return this.record(slot, into, index);
  }

  /** A copy of the key's record, leaving the eviction order alone. */
  peek(key: string): StateRecord | undefined {
    const slot = this.index.get(key);
    return slot === undefined ? undefined : this.record(slot);
  }

  /**
   * The key's state in place, for stepping without copies; marks the key most recently used.
   * Valid until the key is deleted or evicted. Writing through it does not mark the key dirty.
   */
  stateView(key: string): Float32Array | undefined {
    const slot = this.index.get(key);
    if (slot === undefined) return undefined;
    this.touch(slot);
    const at = (slot & this.chunkMask) * this.stateSize;
    return this.chunkOf(slot).state.subarray(at, at + this.stateSize);
  }

  /** Whether `record` has the shape this slab stores: its state size, and its output's if it has one. */
  fits(record: StateRecord): boolean {
    return (
      record.state.length === this.stateSize &&
      (record.lastOutput === undefined || record.lastOutput.length === this.outputSize)
    );
  }

  /**
   * Stores a copy of `record` for `key` as the most recently used. `dirty` (default true) says
   * the durable store does not have it yet; pass `false` for records just loaded from it.
   * Returns the key evicted to make room, if any.
   */
  set(key: string, record: StateRecord, options?: { dirty?: boolean }): EvictedState | undefined {
    if (!this.fits(record)) {
      throw new StateError(
        'STATE_MODEL_MISMATCH',
        `state of key '${key}' has ${record.state.length} floats and ${record.lastOutput?.length ?? 'no'} ` +
          `output floats, this slab holds ${this.stateSize} and ${this.outputSize}`,
      );
    }
    let slot = this.index.get(key);
    let evicted: EvictedState | undefined;
    if (slot !== undefined) {
      this.unlink(slot);
    } else {
      if (this.index.size >= this.maxKeys) {
        slot = this.oldest;
        evicted = this.evicted(slot);
        this.unlink(slot);
        this.forget(slot);
      } else {
        slot = this.free.pop() ?? this.allocate();
      }
      this.index.set(key, slot);
      this.chunkOf(slot).keys[slot & this.chunkMask] = key;
    }
    this.write(slot, record, options?.dirty ?? true);
    this.link(slot);
    return evicted;
  }

  /** Forgets the key; true when it was held. */
  delete(key: string): boolean {
    const slot = this.index.get(key);
    if (slot === undefined) return false;
    this.unlink(slot);
    this.forget(slot);
    this.free.push(slot);
    return true;
  }

  /** Evicts the least recently used key, e.g. to shrink ahead of a batch. */
  evictOldest(): EvictedState | undefined {
    if (this.oldest === NONE) return undefined;
    const slot = this.oldest;
    const evicted = this.evicted(slot);
    this.unlink(slot);
    this.forget(slot);
    this.free.push(slot);
    return evicted;
  }

  /** Marks keys as matching the durable store (after their records were written). */
  markClean(keys: Iterable<string>): void {
    for (const key of keys) {
      const slot = this.index.get(key);
      if (slot !== undefined) this.chunkOf(slot).flags[slot & this.chunkMask] &= ~DIRTY;
    }
  }

  isDirty(key: string): boolean {
    const slot = this.index.get(key);
    return slot !== undefined && (this.chunkOf(slot).flags[slot & this.chunkMask] & DIRTY) !== 0;
  }

  /** Copies of all records (or only dirty ones), least recently used first. Do not modify the slab meanwhile. */
  *entries(options?: { dirtyOnly?: boolean }): IterableIterator<[string, StateRecord]> {
    for (let slot = this.oldest; slot !== NONE; slot = this.chunkOf(slot).next[slot & this.chunkMask]) {
      const chunk = this.chunkOf(slot);
      const i = slot & this.chunkMask;
      if (options?.dirtyOnly && (chunk.flags[i] & DIRTY) === 0) continue;
      yield [chunk.keys[i]!, this.record(slot)];
    }
  }

  private chunkOf(slot: number): Chunk {
    return this.chunks[slot >>> this.chunkBits];
  }

  private allocate(): number {
    const slot = this.allocated++;
    if ((slot & this.chunkMask) === 0) {
      // The last chunk is cut to maxKeys so a small cap does not pay for a whole chunk.
      const slots = Math.min(this.chunkMask + 1, this.maxKeys - slot);
      this.chunks.push(new Chunk(slots, this.stateSize, this.outputSize));
    }
    return slot;
  }

  private write(slot: number, record: StateRecord, dirty: boolean): void {
    const c = this.chunkOf(slot);
    const i = slot & this.chunkMask;
    c.state.set(record.state, i * this.stateSize);
    c.seq[i] = record.seq;
    c.ts[i] = record.ts;
    c.fingerprint[i] = this.fingerprints.id(record.fingerprint);
    const pos = record.lastApplied;
    let kind = KIND_NONE;
    this.bigOffsets.delete(slot);
    if (pos.kind === 'offset') {
      c.posSource[i] = this.sources.id(pos.topic);
      c.posA[i] = pos.partition;
      const n = Number(pos.offset);
      if (Number.isSafeInteger(n) && String(n) === pos.offset) {
        kind = KIND_OFFSET_NUMBER;
        c.posB[i] = n;
      } else {
        kind = KIND_OFFSET_STRING;
        this.bigOffsets.set(slot, pos.offset);
      }
    } else if (pos.kind === 'line') {
      kind = KIND_LINE;
      c.posSource[i] = this.sources.id(pos.file);
      c.posA[i] = pos.line;
    }
    let extra = 0;
    if (record.lastOutput !== undefined) {
      extra |= HAS_OUTPUT;
      c.output.set(record.lastOutput, i * this.outputSize);
    }
    if (record.updatedAt !== undefined) {
      extra |= HAS_UPDATED_AT;
      c.updatedAt[i] = record.updatedAt;
    }
    c.flags[i] = kind | extra | (dirty ? DIRTY : 0);
    if (record.lastId === undefined) this.lastIds.delete(slot);
    else this.lastIds.set(slot, record.lastId);
    if (record.earlierIds === undefined) this.earlierIds.delete(slot);
    else this.earlierIds.set(slot, record.earlierIds);
    if (record.warmedFrom === undefined) this.warmedFrom.delete(slot);
    else this.warmedFrom.set(slot, record.warmedFrom);
  }

  private record(slot: number, into?: ReadInto, index = 0): StateRecord {
    const c = this.chunkOf(slot);
    const i = slot & this.chunkMask;
    const kind = c.flags[i] & KIND_MASK;
    let lastApplied: Position;
    if (kind === KIND_NONE) {
      lastApplied = { kind: 'none' };
    } else if (kind === KIND_LINE) {
      lastApplied = { kind: 'line', file: this.sources.string(c.posSource[i]), line: c.posA[i] };
    } else {
      const offset = kind === KIND_OFFSET_NUMBER ? String(c.posB[i]) : this.bigOffsets.get(slot)!;
      lastApplied = {
        kind: 'offset',
        topic: this.sources.string(c.posSource[i]),
        partition: c.posA[i],
        offset,
      };
    }
    const lastId = this.lastIds.get(slot);
    const record: { -readonly [K in keyof StateRecord]: StateRecord[K] } = {
      seq: c.seq[i],
      ts: c.ts[i],
      state: copyOut(c.state, i, this.stateSize, into?.states[index]),
      lastApplied,
      fingerprint: this.fingerprints.string(c.fingerprint[i]),
    };
    if (lastId !== undefined) record.lastId = lastId;
    const earlierIds = this.earlierIds.get(slot);
    if (earlierIds !== undefined) record.earlierIds = earlierIds;
    if (c.flags[i] & HAS_OUTPUT) {
      record.lastOutput = copyOut(c.output, i, this.outputSize, into?.outputs[index]);
    }
    if (c.flags[i] & HAS_UPDATED_AT) record.updatedAt = c.updatedAt[i];
    const warmedFrom = this.warmedFrom.get(slot);
    if (warmedFrom !== undefined) record.warmedFrom = warmedFrom;
    return record;
  }

  private evicted(slot: number): EvictedState {
    const c = this.chunkOf(slot);
    const i = slot & this.chunkMask;
    return { key: c.keys[i]!, record: this.record(slot), dirty: (c.flags[i] & DIRTY) !== 0 };
  }

  /** Drops an unlinked slot's key and side strings; the caller decides the slot's reuse. */
  private forget(slot: number): void {
    const c = this.chunkOf(slot);
    const i = slot & this.chunkMask;
    this.index.delete(c.keys[i]!);
    c.keys[i] = undefined;
    this.lastIds.delete(slot);
    this.earlierIds.delete(slot);
    this.warmedFrom.delete(slot);
    this.bigOffsets.delete(slot);
  }

  private touch(slot: number): void {
    if (slot === this.newest) return;
    this.unlink(slot);
    this.link(slot);
  }

  /** Appends the slot at the most recently used end. */
  private link(slot: number): void {
    const c = this.chunkOf(slot);
    const i = slot & this.chunkMask;
    c.prev[i] = this.newest;
    c.next[i] = NONE;
    if (this.newest === NONE) this.oldest = slot;
    else this.chunkOf(this.newest).next[this.newest & this.chunkMask] = slot;
    this.newest = slot;
  }

  private unlink(slot: number): void {
    const c = this.chunkOf(slot);
    const i = slot & this.chunkMask;
    const prev = c.prev[i];
    const next = c.next[i];
    if (prev === NONE) this.oldest = next;
    else this.chunkOf(prev).next[prev & this.chunkMask] = next;
    if (next === NONE) this.newest = prev;
    else this.chunkOf(next).prev[next & this.chunkMask] = prev;
    c.prev[i] = NONE;
    c.next[i] = NONE;
  }
}

/** Slot `i`'s `size` floats of `column`, copied into `into` when it is as long, else into a new array. */
function copyOut(
  column: Float32Array,
  i: number,
  size: number,
  into: Float32Array | undefined,
): Float32Array {
  const from = i * size;
  if (into === undefined || into.length !== size) return column.slice(from, from + size);
  for (let j = 0; j < size; j++) into[j] = column[from + j];
  return into;
}
