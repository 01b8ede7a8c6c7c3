/**
 * The health of one Kafka pipeline instance, as `/readyz`, `/metrics` and the dashboard see it:
 * group membership, assignment and restore, per-partition lag, progress, crashes and rejoins, and
 * whether the broker answers. It only keeps what the pipeline and its source report; no I/O.
 */

/** Defaults of the health settings, shared by `cellstream kafka` and `serve`'s `kafka` section. */
export const KAFKA_HEALTH_DEFAULTS = {
  /** No batch committed for a minute while events wait is a stall. */
  stallTimeoutMs: 60_000,
} as const;

/** Receives the pipeline's countable happenings (the Prometheus metrics implement it). */
export interface KafkaHealthObserver {
  rebalance?(): void;
  crash?(restart: boolean): void;
  rejoin?(): void;
  /** A restore finished: its duration, records applied, and records it could not apply (see `RestoreReport`). */
  restore?(seconds: number, records: number, unreadable: number): void;
  /** A partition's state and position re-read from Kafka after a failed batch. */
  resync?(): void;
  /** A standby wrote `records` changelog records into the local store. */
  standby?(records: number): void;
}

export interface KafkaHealthOptions {
  /** No committed batch for this long while there is lag (or while out of the group) is a stall. */
  readonly stallTimeoutMs: number;
  /** No response from the broker for this long counts as disconnected. */
  readonly brokerTimeoutMs: number;
  /** Called once when a stall begins, with why and what to do. */
  readonly onStall?: (message: string) => void;
  /** Called once when a stall ends. */
  readonly onRecover?: () => void;
  readonly now?: () => number;
}

/** A JSON view of the health, for `/v1/stats` and the dashboard. */
export interface KafkaHealthSnapshot {
  readonly ready: boolean;
  readonly reason: string | undefined;
  readonly member: boolean;
  readonly restoring: boolean;
  readonly stalled: boolean;
  readonly brokerConnected: boolean;
  readonly partitions: readonly number[];
  /** Messages behind the end of each owned partition, as of its last fetch (before it: as of its assignment). */
  readonly lag: Readonly<Record<string, number>>;
  readonly totalLag: number;
  /** Since the last batch committed; null before the first. */
  readonly secondsSinceLastCommit: number | null;
  readonly rebalances: number;
  readonly crashes: number;
  readonly rejoins: number;
  readonly restores: number;
  readonly resyncs: number;
  /** The last restore's duration. */
  readonly lastRestoreSeconds: number | null;
  /** With `kafka.workers` above 1: each worker's own health (null until it reported), the rest being summed. */
  readonly workers?: readonly (KafkaHealthSnapshot | null)[];
  /** Changelog partitions followed as a standby (`kafka.standbys`); empty without. */
  readonly standbyPartitions: readonly number[];
  /** Records each standby partition's local copy is behind the changelog, as of its last fetch (absent: not read right now). */
  readonly standbyLag: Readonly<Record<string, number>>;
  /** The changelog offset each standby partition's local copy goes up to (exclusive), where known. */
  readonly standbyOffsets: Readonly<Record<string, string>>;
  /** Changelog records standbys wrote into the local store since start. */
  readonly standbyRecords: number;
}

/** What the standby follower tells the health (see `KafkaHealth.standbyFrom`). */
export interface StandbyView {
  readonly partitions: readonly number[];
  lag(): ReadonlyMap<number, bigint>;
  positions(): ReadonlyMap<number, { readonly next: bigint }>;
  readonly records: number;
}

export class KafkaHealth {
  private readonly options: KafkaHealthOptions;
  private readonly now: () => number;
  private readonly observers: KafkaHealthObserver[] = [];
  private member = false;
  private restoring = false;
  private lostReason: string | undefined;
  private owned: readonly number[] = [];
  private readonly lags = new Map<number, bigint>();
  /** Lag measured when a partition was assigned, shown until its first fetch; never a stall. */
  private readonly assignedLags = new Map<number, bigint>();
  private lastCommitAt: number | undefined;
  /** Last moment the instance was known to be keeping up: a commit, or caught up and fetching. */
  private lastProgressAt: number;
  private lastBrokerAt: number;
  private stallReported = false;
  private timer: NodeJS.Timeout | undefined;
  private counts = { rebalances: 0, crashes: 0, rejoins: 0, restores: 0, resyncs: 0 };
  private lastRestoreSeconds: number | null = null;
  private standby: StandbyView | undefined;

  constructor(options: KafkaHealthOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.lastProgressAt = this.now();
    this.lastBrokerAt = this.now();
  }

  observe(observer: KafkaHealthObserver): void {
    this.observers.push(observer);
  }

  /** Checks for a stall every second (reporting it once), until `close`. */
  watch(): void {
    this.timer ??= setInterval(() => this.check(), 1000);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  joined(partitions: readonly number[]): void {
    this.member = true;
    this.owned = [...partitions];
    // Unknown until each partition's next fetch: a kept partition may have been drained by another
    // instance in between, and a stale lag would look like a stall forever.
    this.lags.clear();
    this.assignedLags.clear();
    this.counts.rebalances++;
    for (const o of this.observers) o.rebalance?.();
  }

  left(): void {
    this.member = false;
  }

  revoked(partitions: readonly number[]): void {
    for (const p of partitions) {
      this.lags.delete(p);
      this.assignedLags.delete(p);
    }
  }

  /** Joins so far: a measurement taken for one join is dropped if another has come since. */
  generation(): number {
    return this.counts.rebalances;
  }

  /**
   * `partition`'s lag measured at its assignment (the group's committed offset to the partition's
   * end), for a partition no fetch has reported since: one drained before it moved here would
   * otherwise have no lag at all until its next message. Shown, but never taken for a stall: under
   * exactly-once a trailing transaction marker counts in it, which no fetch would ever clear.
   */
  lagAtAssignment(generation: number, partition: number, lag: bigint): void {
    if (generation !== this.generation() || !this.owned.includes(partition) || this.lags.has(partition))
      return;
    this.assignedLags.set(partition, lag > 0n ? lag : 0n);
  }

  crashed(restart: boolean): void {
    this.member = false;
    this.counts.crashes++;
    for (const o of this.observers) o.crash?.(restart);
  }

  /** A member again after a crash the client retried in place: same assignment, no rebalance. */
  resumed(): void {
    if (this.lostReason) return;
    this.member = true;
  }

  rejoining(): void {
    this.counts.rejoins++;
    for (const o of this.observers) o.rejoin?.();
  }

  /** The source gave up: never ready again (the process is about to exit). */
  lost(reason: string): void {
    this.member = false;
    this.lostReason = reason;
  }

  restoreStarted(): void {
    this.restoring = true;
  }

  restoreFinished(seconds: number, records: number, unreadable = 0): void {
    this.restoring = false;
    this.counts.restores++;
    this.lastRestoreSeconds = seconds;
    for (const o of this.observers) o.restore?.(seconds, records, unreadable);
  }

  restoreFailed(): void {
    this.restoring = false;
  }

  resynced(): void {
    this.counts.resyncs++;
    for (const o of this.observers) o.resync?.();
  }

  /** The standby follower whose partitions and lag the snapshot reports. */
  standbyFrom(view: StandbyView): void {
    this.standby = view;
  }

  /** A standby wrote `records` changelog records of partitions not owned into the local store. */
  standbyApplied(records: number): void {
    for (const o of this.observers) o.standby?.(records);
  }

  brokerContact(): void {
    this.lastBrokerAt = this.now();
  }

  /** A fetch came back: while caught up, that is progress too. */
  fetched(): void {
    if (this.member && this.totalLag() === 0n) this.lastProgressAt = this.now();
  }

  lag(partition: number, lag: bigint): void {
    this.lags.set(partition, lag);
  }

  committed(partition: number, lag: bigint): void {
    this.lags.set(partition, lag);
    this.lastCommitAt = this.now();
    this.lastProgressAt = this.lastCommitAt;
    this.check();
  }

  totalLag(): bigint {
    let n = 0n;
    for (const v of this.lags.values()) n += v > 0n ? v : 0n;
    return n;
  }

  brokerConnected(): boolean {
    return this.now() - this.lastBrokerAt <= this.options.brokerTimeoutMs;
  }

  /** No committed batch for `stallTimeoutMs` while behind, or while out of the group. */
  stalled(): boolean {
    if (this.now() - this.lastProgressAt <= this.options.stallTimeoutMs) return false;
    return this.totalLag() > 0n || !this.member;
  }

  secondsSinceLastCommit(): number | null {
    return this.lastCommitAt === undefined ? null : (this.now() - this.lastCommitAt) / 1000;
  }

  /** Undefined when ready: in the group, assignment restored, consuming; else why not. */
  notReadyReason(groupId: string): string | undefined {
    if (this.lostReason) return this.lostReason;
    if (!this.member) return `not a member of the Kafka consumer group '${groupId}'`;
    if (this.restoring) return 'restoring partition state from the changelog';
    if (!this.brokerConnected())
      return `no answer from the Kafka broker for over ${Math.round(this.options.brokerTimeoutMs / 1000)} s`;
    if (this.stalled()) return this.stallMessage();
    return undefined;
  }

  /** Reports a stall once when it begins (and its end), from the periodic check or a commit. */
  check(): void {
    const stalled = this.stalled();
    if (stalled && !this.stallReported) {
      this.stallReported = true;
      this.options.onStall?.(this.stallMessage());
    } else if (!stalled && this.stallReported) {
      this.stallReported = false;
      this.options.onRecover?.();
    }
  }

  snapshot(groupId: string): KafkaHealthSnapshot {
    const reason = this.notReadyReason(groupId);
    const lag: Record<string, number> = {};
    const known = new Map([...this.assignedLags, ...this.lags]);
    for (const p of [...known.keys()].sort((a, b) => a - b)) lag[String(p)] = Number(known.get(p));
    return {
      ready: reason === undefined,
      reason,
      member: this.member,
      restoring: this.restoring,
      stalled: this.stalled(),
      brokerConnected: this.brokerConnected(),
      partitions: this.owned,
      lag,
      totalLag: Number(this.totalLag()),
      secondsSinceLastCommit: this.secondsSinceLastCommit(),
      ...this.counts,
      lastRestoreSeconds: this.lastRestoreSeconds,
      standbyPartitions: this.standby?.partitions ?? [],
      standbyLag: Object.fromEntries(
        [...(this.standby?.lag() ?? new Map<number, bigint>())].map(([p, n]) => [String(p), Number(n)]),
      ),
      standbyOffsets: Object.fromEntries(
        [...(this.standby?.positions() ?? new Map<number, { next: bigint }>())].map(([p, at]) => [
          String(p),
          at.next.toString(),
        ]),
      ),
      standbyRecords: this.standby?.records ?? 0,
    };
  }

  private stallMessage(): string {
    const seconds = Math.round((this.now() - this.lastProgressAt) / 1000);
    const why = this.member ? `${this.totalLag()} events are waiting` : 'the consumer is not in its group';
    return (
      `stalled: no batch committed for ${seconds} s while ${why}. ` +
      'Check that the broker is reachable (cellstream_kafka_broker_connected) and the consumer is in its group; ' +
      'if it does not recover, restart this process (a supervisor watching /readyz or the exit code does this)'
    );
  }
}

/** What `/readyz`, the Kafka metrics and the dashboard read: one pipeline's health, or an instance's over its workers. */
export type KafkaHealthView = Pick<
  KafkaHealth,
  'snapshot' | 'notReadyReason' | 'secondsSinceLastCommit' | 'stalled' | 'brokerConnected'
>;
