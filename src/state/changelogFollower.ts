import type { ChangelogReader } from './changelogReader.js';
import type { ChangelogStore, UnreadableChangelogRecord } from './changelogStore.js';

export interface ChangelogFollowerOptions {
  /** Wait before following a partition again after its read failed (broker away, consumer lost), ms. Default 1000. */
  readonly retryMs?: number;
  /** A run of records of `partition` reached the local store. */
  readonly onApplied?: (partition: number, records: number) => void;
  /** Records the follower could not apply as states (logged like a restore's). */
  readonly onUnreadable?: (records: readonly UnreadableChangelogRecord[]) => void;
  /** Following `partition` failed; it is tried again after `retryMs`. */
  readonly onError?: (partition: number, error: Error) => void;
}

/**
 * Standby state: keeps the local store's copy of changelog partitions this instance does not own
 * close to the changelog's end, so that when one is assigned the restore reads only what was
 * written since (the tail) instead of the whole partition.
 *
 * It reads through a `ChangelogReader` of its own (a consumer alone in a group of its own, outside
 * the input group), read_committed, and writes each run of records into the local store with the
 * partition's checkpoint in the same write, exactly as a restore does; so a restore after it
 * simply starts from a later checkpoint. The owner of a partition must `unfollow` it before it
 * touches the partition's state: that resolves only once no follower write of it is in flight or
 * can start.
 */
export class ChangelogFollower {
  private readonly store: ChangelogStore;
  private readonly reader: ChangelogReader;
  private readonly options: ChangelogFollowerOptions;
  /**
   * Partitions to follow, each with the token of the loop that follows it: a loop ends once its
   * token is no longer there, even when a later `follow` wanted the partition again meanwhile.
   */
  private readonly wanted = new Map<number, symbol>();
  /** Each followed partition's loop, which ends once the partition is no longer wanted. */
  private readonly loops = new Map<number, Promise<void>>();
  /** Waits between attempts, cut short by `unfollow` and `stop`. */
  private readonly pauses = new Map<number, () => void>();
  private stopped = false;

  constructor(store: ChangelogStore, reader: ChangelogReader, options: ChangelogFollowerOptions = {}) {
    this.store = store;
    this.reader = reader;
    this.options = options;
  }

  /** Partitions being followed now. */
  get partitions(): readonly number[] {
    return [...this.wanted.keys()].sort((a, b) => a - b);
  }

  /**
   * Records each followed partition's local copy is behind the changelog's end as last fetched
   * (0: caught up). A partition not being read right now (starting, or waiting to try again
   * after a failure) is left out.
   */
  lag(): Map<number, bigint> {
    const lag = new Map<number, bigint>();
    for (const [p, at] of this.positions()) {
      if (at.high === undefined) continue;
      lag.set(p, at.high > at.next ? at.high - at.next : 0n);
    }
    return lag;
  }

  /**
   * Each followed partition being read now: the changelog offset its local copy goes up to
   * (exclusive), and the partition's end as last fetched.
   */
  positions(): Map<number, { readonly next: bigint; readonly high: bigint | undefined }> {
    const positions = new Map<number, { next: bigint; high: bigint | undefined }>();
    for (const p of this.partitions) {
      const at = this.reader.progress(p);
      if (at) positions.set(p, at);
    }
    return positions;
  }

  /** Starts following each of `partitions` not followed yet, from its local checkpoint. */
  follow(partitions: readonly number[]): void {
    if (this.stopped) return;
    for (const p of partitions) {
      if (this.wanted.has(p)) continue;
      const token = Symbol(`follow ${p}`);
      this.wanted.set(p, token);
      // A loop still winding down from an `unfollow` finishes first; the new one starts after it.
      const previous = this.loops.get(p) ?? Promise.resolve();
      const loop = previous.then(() => this.run(p, token));
      this.loops.set(p, loop);
      void loop.finally(() => {
        if (this.loops.get(p) === loop) this.loops.delete(p);
      });
    }
  }

  /**
   * Stops following `partitions`; resolves once none of their records is being written, nor will
   * be, to the local store by the follower.
   */
  async unfollow(partitions: readonly number[]): Promise<void> {
    const loops: Array<Promise<void> | undefined> = [];
    for (const p of partitions) {
      this.wanted.delete(p);
      this.pauses.get(p)?.();
      loops.push(this.loops.get(p));
    }
    for (const p of partitions) await this.reader.cancel(p);
    await Promise.all(loops);
  }

  /** Stops following everything (the reader is the caller's to stop). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.unfollow([...this.wanted.keys()]);
    await Promise.all(this.loops.values());
  }

  /**
   * Follows `partition` until it is no longer wanted: from its checkpoint (or from the start, its
   * keys dropped, when the checkpoint does not fit the changelog), and again after a failure.
   */
  private async run(partition: number, token: symbol): Promise<void> {
    const wanted = () => this.wanted.get(partition) === token;
    while (wanted()) {
      try {
        const bounds = (await this.reader.bounds()).get(partition);
        if (!bounds) throw new Error(`changelog topic '${this.store.topic}' has no partition ${partition}`);
        if (!wanted()) return;
        const { from } = await this.store.startOf(partition, bounds);
        // Checked in the same tick as `follow` registers the read, so an `unfollow` either came
        // before (and nothing is read) or finds the read to cancel.
        if (!wanted()) return;
        await this.reader.follow(
          partition,
          from,
          async (entries, next) => {
            const unreadable = await this.store.applyChangelog(partition, entries, next);
            this.options.onApplied?.(partition, entries.length);
            if (unreadable.length > 0) this.options.onUnreadable?.(unreadable);
          },
          bounds.high,
        );
      } catch (err) {
        if (!wanted() || this.stopped) return;
        this.options.onError?.(partition, err instanceof Error ? err : new Error(String(err)));
        await new Promise<void>((resume) => {
          const timer = setTimeout(resume, this.options.retryMs ?? 1000);
          this.pauses.set(partition, () => {
            clearTimeout(timer);
            resume();
          });
        });
        this.pauses.delete(partition);
      }
    }
  }
}
