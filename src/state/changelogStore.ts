import { StateError } from '../errors.js';
import type { KafkaSender, OutgoingMessage, SentRecord } from '../kafka/adapter.js';
import { keyPartitioner } from '../kafka/keyPartitioner.js';
import { chunkMessages } from '../kafka/messageChunks.js';
import type { ChangelogEntry, ChangelogReader, PartitionBounds } from './changelogReader.js';
import { decodeStateRecord, encodeStateRecord } from './recordCodec.js';
import type { StagedChanges } from './stagedStore.js';
import { type ReadInto, type StateRecord, type StateStore, UNREADABLE_STATE_FINGERPRINT } from './types.js';

/** Keys under this prefix hold the store's own bookkeeping in the local store; entity keys may not use it. */
export const RESERVED_KEY_PREFIX = '\u0000cellstream.';
const CHECKPOINT_FINGERPRINT = 'changelog-checkpoint';

/** Next changelog offset each partition's local state includes, after a send. */
export type Checkpoints = ReadonlyMap<number, bigint>;

export interface ChangelogStoreOptions {
  /** The store that holds the state on this machine (LMDB). */
  readonly local: StateStore;
  /** The compacted changelog topic. */
  readonly topic: string;
  /** Its partition count, the input topic's. */
  readonly partitions: number;
  /**
   * The input topic: a record last applied from one of its partitions goes to the changelog
   * partition of that number, so a key's state lives where its events do. Other keys are placed by
   * Kafka's default (murmur2) partitioner.
   */
  readonly sourceTopic?: string;
  /** Where `putMany`/`deleteMany` send (an idempotent producer); the two-phase methods take their own. */
  readonly producer?: KafkaSender;
  /**
   * A key's record of an earlier input position never replaces one of a later position, in a
   * restore or a standby's copy. For at-least-once, where nothing fences an instance whose
   * membership moved on: its late write must not become the key's state. Off under exactly-once,
   * where the new owner's transactional id fences such writes, and where a record of an aborted
   * transaction that a client let through must lose to the committed one after it.
   */
  readonly keepLaterPosition?: boolean;
}

/** A changelog record a restore could not apply as a state; the restore went on past it. */
export interface UnreadableChangelogRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /** The record's key; `''` when it has none. */
  readonly key: string;
  /**
   * `undecodable`: the value is not a state record, and the key is marked unreadable;
   * `unusable-key`: the key can never be held (reserved, too long, none), and the record is skipped.
   */
  readonly kind: 'undecodable' | 'unusable-key';
  /** Why: the decode error, or why the key can never be held. */
  readonly reason: string;
}

/** The warning to log for a record a restore could not apply. */
export function unreadableMessage(record: UnreadableChangelogRecord): string {
  const where = `${record.topic} partition ${record.partition} offset ${record.offset}`;
  return record.kind === 'unusable-key'
    ? `changelog record at ${where} skipped: ${record.reason}`
    : `changelog record at ${where} (key '${record.key.slice(0, 40)}') does not decode: ${record.reason}; the key's events are refused (STATE_CORRUPT) or, under onModelMismatch reset, it starts afresh`;
}

/** How a restore went, per partition. */
export interface RestoreReport {
  readonly partition: number;
  /** Changelog records applied to the local store. */
  readonly records: number;
  /** Whether the local state was discarded and rebuilt from the start of the changelog. */
  readonly rebuilt: boolean;
  /**
   * The key's latest records in the range read that could not be applied: one that does not
   * decode leaves the key marked unreadable (`UNREADABLE_STATE_FINGERPRINT`), one whose key can
   * never be held (reserved, too long, none) is skipped. Records a later one of their key
   * replaced are not decoded, so not listed.
   */
  readonly unreadable: readonly UnreadableChangelogRecord[];
}

/**
 * A `StateStore` whose writes also go to a compacted changelog topic (key = entity key, value =
 * `encodeStateRecord` bytes, a tombstone on delete), before they reach the local store. `restore`
 * brings a partition's local state up to the changelog's end, from the changelog offset the local
 * store last included (kept per partition in the local store under a reserved key, written in the
 * same batch as the records it covers), or from the start when the local store has none.
 *
 * Re-applying changelog records is harmless (each is a whole state), so checkpoints only need to be
 * no later than the truth: a crash between a changelog send and the local write just re-reads.
 */
export class ChangelogStore implements StateStore {
  readonly topic: string;
  readonly partitions: number;
  private readonly local: StateStore;
  private readonly sourceTopic: string | undefined;
  private readonly producer: KafkaSender | undefined;
  private readonly keepLaterPosition: boolean;
  private readonly partitionOfKey: (key: string) => number;
  private readonly inFlight = new Set<Promise<unknown>>();
  private closing: Promise<void> | undefined;
  /**
   * The bytes each record was sent (or restored) as, until it reaches the local store: a store
   * that takes encoded records (LMDB) gets them as they are, so no record is encoded twice.
   */
  private readonly bytesOf = new WeakMap<StateRecord, Uint8Array>();

  /** The key limit of the store underneath. */
  get maxKeyBytes(): number | undefined {
    return this.local.maxKeyBytes;
  }

  /** `STATE_KEY_RESERVED` for a key under the reserved prefix, else what the store underneath says. */
  keyError(key: string): StateError | undefined {
    return isReserved(key) ? reservedKeyError(key) : this.local.keyError?.(key);
  }

  constructor(options: ChangelogStoreOptions) {
    this.local = options.local;
    this.topic = options.topic;
    this.partitions = options.partitions;
    this.sourceTopic = options.sourceTopic;
    this.producer = options.producer;
    this.keepLaterPosition = options.keepLaterPosition === true;
    this.partitionOfKey = keyPartitioner(this.topic, options.partitions);
  }

  /** The changelog partition of `key`, whose latest record (if any) is `record`. */
  partitionOf(key: string, record?: StateRecord): number {
    const at = record?.lastApplied;
    // A record that stands in for an unreadable one says where that one was: in the changelog.
    const here = at?.kind === 'offset' && (at.topic === this.sourceTopic || at.topic === this.topic);
    if (here && at.partition < this.partitions) return at.partition;
    return this.partitionOfKey(key);
  }

  async getMany(keys: readonly string[], into?: ReadInto): Promise<(StateRecord | undefined)[]> {
    const records = await this.local.getMany(keys, into);
    return records.map((r, i) => (isReserved(keys[i]) ? undefined : r));
  }

  putMany(entries: ReadonlyArray<readonly [string, StateRecord]>): Promise<void> {
    return this.write({ puts: entries, deletes: [] });
  }

  deleteMany(keys: readonly string[]): Promise<void> {
    return this.write({ puts: [], deletes: keys.filter((k) => !isReserved(k)) });
  }

  /** Sends `changes` to the changelog through the store's producer, then applies them locally. */
  async write(changes: StagedChanges): Promise<void> {
    const producer = this.producer;
    if (!producer) throw new Error('ChangelogStore: no producer to write through');
    return this.track(async () => {
      const checkpoints = await this.send(changes, producer);
      await this.applyLocally(changes, checkpoints);
    });
  }

  /**
   * First half of a write: sends `changes` to the changelog through `sender` (a producer, or an open
   * transaction whose commit must come before `applyLocally`). Resolves once acknowledged.
   */
  async send(changes: StagedChanges, sender: KafkaSender): Promise<Checkpoints> {
    this.checkOpen();
    for (const [key] of changes.puts) checkKey(key);
    if (changes.puts.length === 0 && changes.deletes.length === 0) return new Map();
    const deleted = changes.deletes.length > 0 ? await this.local.getMany(changes.deletes) : [];
    const messages: Array<OutgoingMessage & { partition: number }> = [
      ...changes.puts.map(([key, record]) => {
        const value = encodeStateRecord(record);
        this.bytesOf.set(record, value);
        return { key, value, partition: this.partitionOf(key, record) };
      }),
      ...changes.deletes.map((key, i) => ({
        key,
        value: null,
        partition: this.partitionOf(key, deleted[i]),
      })),
    ];
    const checkpoints = new Map<number, bigint>();
    for (const chunk of chunkMessages(messages)) {
      const counts = new Map<number, number>();
      for (const m of chunk) counts.set(m.partition, (counts.get(m.partition) ?? 0) + 1);
      const sent: SentRecord[] = await sender.sendBatch({
        topicMessages: [{ topic: this.topic, messages: chunk }],
        acks: -1,
      });
      for (const m of sent) {
        const n = counts.get(m.partition);
        if (m.topicName === this.topic && n !== undefined && m.baseOffset !== undefined) {
          checkpoints.set(m.partition, BigInt(m.baseOffset) + BigInt(n));
        }
      }
    }
    return checkpoints;
  }

  /** Second half of a write: `changes` into the local store, with the checkpoints `send` returned. */
  async applyLocally(changes: StagedChanges, checkpoints: Checkpoints): Promise<void> {
    if (changes.deletes.length > 0) await this.local.deleteMany(changes.deletes);
    const marks = [...checkpoints].map(([p, next]) => this.checkpointEntry(p, next));
    const puts = [...changes.puts, ...marks];
    if (puts.length === 0) return;
    const local = this.local as StateStore & Partial<EncodedPuts>;
    if (local.putEncoded === undefined) return this.local.putMany(puts);
    await local.putEncoded(
      puts.map(([key, record]) => [key, this.bytesOf.get(record) ?? encodeStateRecord(record)] as const),
    );
  }

  /** The changelog offset partition `p`'s local state includes everything before, if known. */
  async checkpoint(partition: number): Promise<bigint | undefined> {
    const [record] = await this.local.getMany([checkpointKey(partition)]);
    const at = record?.lastApplied;
    if (at?.kind !== 'offset' || at.topic !== this.topic) return undefined;
    return BigInt(at.offset);
  }

  /**
   * Brings the local state of `partitions` up to the changelog's end. A local store without a
   * checkpoint, or one that does not fit the changelog (ahead of its end, behind its start), has
   * the partition's keys dropped and rebuilt from the start of the changelog.
   */
  async restore(partitions: readonly number[], reader: ChangelogReader): Promise<RestoreReport[]> {
    const bounds = await reader.bounds();
    const reports: RestoreReport[] = [];
    for (const partition of partitions) {
      const b = bounds.get(partition);
      if (!b)
        throw new StateError(
          'STATE_CORRUPT',
          `changelog topic '${this.topic}' has no partition ${partition}`,
        );
      const { from, rebuilt } = await this.startOf(partition, b);
      let records = 0;
      const unreadable: UnreadableChangelogRecord[] = [];
      await reader.read(partition, from, b.high, async (entries, next) => {
        records += entries.length;
        unreadable.push(...(await this.applyEntries(partition, entries, next)));
      });
      if (rebuilt || from !== b.high) await this.local.putMany([this.checkpointEntry(partition, b.high)]);
      reports.push({ partition, records, rebuilt, unreadable });
    }
    return reports;
  }

  /**
   * Where a read of changelog `partition` (now within `bounds`) must start to bring the local state
   * up to date: the local checkpoint; or, with none or one that does not fit the changelog (ahead
   * of its end, behind its start), the changelog's start, once the partition's keys are dropped
   * (`rebuilt`).
   */
  async startOf(partition: number, bounds: PartitionBounds): Promise<{ from: bigint; rebuilt: boolean }> {
    const mark = await this.checkpoint(partition);
    if (mark !== undefined && mark <= bounds.high && mark >= bounds.low)
      return { from: mark, rebuilt: false };
    await this.dropPartition(partition);
    return { from: bounds.low, rebuilt: true };
  }

  /**
   * Applies a run of changelog records of `partition` read from Kafka (a standby's follower), with
   * the checkpoint `next` in the same local write, as a restore does; returns the records it could
   * not apply (see `RestoreReport.unreadable`).
   */
  applyChangelog(
    partition: number,
    entries: readonly ChangelogEntry[],
    next: bigint,
  ): Promise<UnreadableChangelogRecord[]> {
    this.checkOpen();
    return this.applyEntries(partition, entries, next);
  }

  async *entries(into?: ReadInto): AsyncIterable<[string, StateRecord]> {
    for await (const entry of this.local.entries(into)) if (!isReserved(entry[0])) yield entry;
  }

  async size(): Promise<number> {
    const marks = Array.from({ length: this.partitions }, (_, p) => checkpointKey(p));
    const held = (await this.local.getMany(marks)).filter((r) => r !== undefined).length;
    return (await this.local.size()) - held;
  }

  /** Waits for writes in flight, then closes the local store (the producer and reader belong to the caller). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled(this.inFlight);
      await this.local.close();
    })();
    return this.closing;
  }

  private checkOpen(): void {
    if (this.closing)
      throw new StateError('STATE_CLOSED', `the changelog-backed store of '${this.topic}' is closed`);
  }

  private track(fn: () => Promise<void>): Promise<void> {
    this.checkOpen();
    const p = fn();
    this.inFlight.add(p);
    const forget = () => this.inFlight.delete(p);
    p.then(forget, forget);
    return p;
  }

  /**
   * Applies a run of changelog records to the local store and returns those it could not apply.
   * A record must never stop a restore, or the partition would stall for good on every attempt:
   * one that does not decode leaves its key a stand-in record saying where it was (the engine
   * then refuses or resets the key, never silently starts it afresh), and one whose key the local
   * store can never hold is skipped. Either way the checkpoint moves past it.
   *
   * A key's later record wins, as compaction would keep it; with `keepLaterPosition`, not over a
   * record of a later input position (`laterPosition`), neither one of this run nor the one held
   * locally (see the option).
   */
  private async applyEntries(
    partition: number,
    entries: readonly ChangelogEntryLike[],
    next: bigint,
  ): Promise<UnreadableChangelogRecord[]> {
    const keepLater = this.keepLaterPosition;
    const latest = new Map<string, { put: StateRecord } | { deleted: true }>();
    const unreadable: UnreadableChangelogRecord[] = [];
    // Without `keepLaterPosition` only a key's last record of the run counts, so only it is decoded.
    for (const { key, value, offset } of keepLater ? entries : lastOfEachKey(entries)) {
      const refused = key === '' ? 'the record has no key' : this.keyError(key)?.message;
      const at = { topic: this.topic, partition, offset: offset.toString() };
      if (refused !== undefined) {
        unreadable.push({ ...at, key, kind: 'unusable-key', reason: refused });
        continue;
      }
      let record: StateRecord;
      if (value === null) {
        latest.delete(key);
        latest.set(key, { deleted: true });
        continue;
      }
      try {
        // Decoded to check it and to place it; kept as sent, so LMDB holds the changelog's bytes.
        record = decodeStateRecord(value, key);
        this.bytesOf.set(record, value);
      } catch (err) {
        if (!(err instanceof StateError)) throw err;
        unreadable.push({ ...at, key, kind: 'undecodable', reason: err.message });
        record = this.unreadableEntry(partition, offset);
      }
      const held = latest.get(key);
      if (keepLater && held !== undefined && 'put' in held && laterPosition(held.put, record)) continue;
      latest.delete(key);
      latest.set(key, { put: record });
    }
    const putKeys = keepLater ? [...latest].filter(([, v]) => 'put' in v).map(([key]) => key) : [];
    const stored = putKeys.length > 0 ? await this.local.getMany(putKeys) : [];
    const local = new Map(putKeys.map((key, i) => [key, stored[i]]));
    const deletes: string[] = [];
    const puts: Array<readonly [string, StateRecord]> = [];
    for (const [key, change] of latest) {
      if (!('put' in change)) {
        deletes.push(key);
        continue;
      }
      const current = local.get(key);
      if (current !== undefined && laterPosition(current, change.put)) continue;
      puts.push([key, change.put]);
    }
    await this.applyLocally({ puts, deletes }, new Map([[partition, next]]));
    return unreadable;
  }

  /** The stand-in for a key whose changelog record at `offset` of `partition` does not decode. */
  private unreadableEntry(partition: number, offset: bigint): StateRecord {
    return {
      seq: 0,
      ts: 0,
      state: new Float32Array(0),
      lastApplied: { kind: 'offset', topic: this.topic, partition, offset: offset.toString() },
      fingerprint: UNREADABLE_STATE_FINGERPRINT,
    };
  }

  private async dropPartition(partition: number): Promise<void> {
    const drop: string[] = [];
    for await (const [key, record] of this.entries())
      if (this.partitionOf(key, record) === partition) drop.push(key);
    drop.push(checkpointKey(partition));
    await this.local.deleteMany(drop);
  }

  private checkpointEntry(partition: number, next: bigint): readonly [string, StateRecord] {
    return [
      checkpointKey(partition),
      {
        seq: 0,
        ts: 0,
        state: new Float32Array(0),
        lastApplied: { kind: 'offset', topic: this.topic, partition, offset: next.toString() },
        fingerprint: CHECKPOINT_FINGERPRINT,
      },
    ];
  }
}

/** A local store that takes records in the bytes of `encodeStateRecord` (LmdbStore). */
interface EncodedPuts {
  putEncoded(entries: ReadonlyArray<readonly [string, Uint8Array]>): Promise<void>;
}

interface ChangelogEntryLike {
  readonly key: string;
  readonly value: Buffer | null;
  readonly offset: bigint;
}

/** Each key's last entry of `entries`, in the order of those last entries (as compaction keeps them). */
function lastOfEachKey(entries: readonly ChangelogEntryLike[]): ChangelogEntryLike[] {
  const last = new Map<string, ChangelogEntryLike>();
  for (const e of entries) {
    last.delete(e.key);
    last.set(e.key, e);
  }
  return [...last.values()];
}

/**
 * Whether `held` applied a later event of the same input partition than `incoming`. The engine
 * never writes a key an earlier input position than its record's (it skips events its position
 * covers), so only a stale writer's record can go backwards. Records of other kinds of position,
 * or of another topic or partition, are not compared: the later in the changelog wins.
 */
function laterPosition(held: StateRecord, incoming: StateRecord): boolean {
  const a = held.lastApplied;
  const b = incoming.lastApplied;
  if (a.kind !== 'offset' || b.kind !== 'offset' || a.topic !== b.topic || a.partition !== b.partition) {
    return false;
  }
  return offsetValue(a.offset) > offsetValue(b.offset);
}

/** An offset's value; a string that is not one compares as the lowest. */
function offsetValue(offset: string): bigint {
  try {
    return BigInt(offset);
  } catch {
    return -1n;
  }
}

function checkpointKey(partition: number): string {
  return `${RESERVED_KEY_PREFIX}changelog.${partition}`;
}

function isReserved(key: string): boolean {
  return key.startsWith(RESERVED_KEY_PREFIX);
}

function reservedKeyError(key: string): StateError {
  return new StateError('STATE_KEY_RESERVED', `entity key '${JSON.stringify(key)}' uses the reserved prefix`);
}

function checkKey(key: string): void {
  if (isReserved(key)) throw reservedKeyError(key);
}
