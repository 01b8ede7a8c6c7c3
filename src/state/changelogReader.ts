import { randomUUID } from 'node:crypto';
import type { KafkaAdmin, KafkaClient, KafkaConsumer } from '../kafka/adapter.js';

/** One changelog record as read back: entity key, record bytes (`null`: a tombstone), offset. */
export interface ChangelogEntry {
  readonly key: string;
  readonly value: Buffer | null;
  readonly offset: bigint;
}

/** Where a changelog partition starts and ends (the last stable offset; the next offset to be written). */
export interface PartitionBounds {
  readonly low: bigint;
  readonly high: bigint;
}

interface ReadJob {
  next: bigint;
  readonly to: bigint;
  readonly apply: (entries: ChangelogEntry[], next: bigint) => Promise<void>;
  readonly done: () => void;
  readonly fail: (err: unknown) => void;
  /** The `apply` call in progress, which `cancel` waits for. */
  applying?: Promise<void>;
  /** Set by `cancel`: no `apply` call starts after it. */
  cancelled?: boolean;
  /** Its partition was resumed (so `cancel` pauses it again). */
  resumed?: boolean;
  /** The partition's end as last seen (a fetch's high watermark, or the bounds a follow began at). */
  high?: bigint;
}

/** The end of a `follow`: beyond any offset a partition can reach. */
const FOREVER = 2n ** 63n;

export interface ChangelogReaderOptions {
  readonly topic: string;
  /** Consumer group of the reader; unique per instance by default, since it must own every partition. */
  readonly groupId?: string;
  /** Longest a fetch waits for data; low values make restores of short tails quick. Default 100. */
  readonly maxWaitTimeInMs?: number;
  /**
   * Session timeout of the reader's group membership, ms. Default 30 s (kafkajs's); the pipeline
   * passes its own consumer's. Also how long a restore can wait after the broker's return: see
   * `createConsumer`.
   */
  readonly sessionTimeout?: number;
  /** Heartbeat interval of the reader's consumer, ms; well inside `sessionTimeout`. Default 3 s (kafkajs's). */
  readonly heartbeatInterval?: number;
}

/**
 * Reads ranges of changelog partitions, for restores. kafkajs has no `assign()`, so the reader is a
 * consumer alone in a group of its own (it owns every partition), kept paused, and a read seeks one
 * partition, resumes it until the range is read, and pauses it again. Reads see committed records only.
 */
export class ChangelogReader {
  readonly topic: string;
  private readonly kafka: KafkaClient;
  private readonly options: ChangelogReaderOptions;
  private readonly groupId: string;
  private consumer: KafkaConsumer;
  /** Every consumer made (a new one after each crash kafkajs does not restart from); `stop` disconnects all. */
  private readonly consumers = new Set<KafkaConsumer>();
  private readonly admin: KafkaAdmin;
  private readonly jobs = new Map<number, ReadJob>();
  private started: Promise<void> | undefined;
  private stopped = false;

  constructor(kafka: KafkaClient, options: ChangelogReaderOptions) {
    this.topic = options.topic;
    this.kafka = kafka;
    this.options = options;
    this.groupId = options.groupId ?? `cellstream-restore-${randomUUID()}`;
    this.consumer = this.createConsumer();
    this.admin = kafka.admin();
  }

  private createConsumer(): KafkaConsumer {
    const consumer = this.kafka.consumer({
      groupId: this.groupId,
      maxWaitTimeInMs: this.options.maxWaitTimeInMs ?? 100,
      // After a crash kafkajs restarts the consumer as a new member (no member id), and a broker
      // that restarted reloads the old member with the group: the new one's join (and so every
      // restore meanwhile) waits until the old member's session expires. With kafkajs's 30 s
      // default that was the ~30 s before the first prediction after some broker returns; the
      // pipeline's own session timeout bounds it as it bounds its own group's rejoin.
      ...(this.options.sessionTimeout === undefined ? {} : { sessionTimeout: this.options.sessionTimeout }),
      ...(this.options.heartbeatInterval === undefined
        ? {}
        : { heartbeatInterval: this.options.heartbeatInterval }),
      // kafkajs schedules its restart after a retriable crash even when the crash ends a join that
      // was still retrying as `disconnect` ran; that restarted consumer would outlive `stop`.
      restartOnFailure: async () => !this.stopped,
    });
    this.consumers.add(consumer);
    // After a crash kafkajs does not restart from (the broker gone too long), reads in progress
    // would wait forever: fail them, and let the next read start a fresh consumer.
    consumer.listen({
      crash: (error, restart) => {
        if (restart || consumer !== this.consumer || this.stopped) return;
        for (const [partition, job] of this.jobs) {
          this.jobs.delete(partition);
          job.fail(new Error(`the changelog reader's consumer crashed: ${error.message}`));
        }
        this.consumer = this.createConsumer();
        this.started = undefined;
        // kafkajs has disconnected it; make sure, so nothing of it outlives `stop`.
        this.retire(consumer).catch(() => {});
      },
    });
    return consumer;
  }

  /** Connects and joins the reader's group; the reads wait for it. */
  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('the changelog reader was stopped'));
    if (this.started) return this.started;
    const started = (async () => {
      const consumer = this.consumer;
      try {
        await this.admin.connect();
        await consumer.connect();
      } catch (err) {
        // `stop` closed them under the connect (@platformatic/kafka then fails it): say so.
        if (this.stopped) throw new Error('the changelog reader was stopped', { cause: err });
        throw err;
      }
      await consumer.subscribe({ topic: this.topic, fromBeginning: true });
      // A start that was connecting while `stop` ran must not leave a consumer or admin connected.
      if (this.stopped) {
        await this.retire(consumer);
        await this.admin.disconnect();
        throw new Error('the changelog reader was stopped');
      }
      consumer.listen({
        // Batches of control records only (transaction markers) never reach eachBatch. Only those are
        // told here: the end of a batch eachBatch passed over (fetched before this read's seek) would
        // finish a read that has applied nothing of it.
        batchEnd: (topic, partition, next) => {
          if (topic === this.topic) this.advance(partition, next);
        },
      });
      await consumer.run({
        autoResolve: true,
        eachBatch: async ({ batch, isStale }) => {
          const job = this.jobs.get(batch.partition);
          // A batch fetched before the partition was last sought may lie anywhere, even past the
          // new start (a follow sought back to a checkpoint): only the seek's own fetches count.
          if (!job || job.cancelled || isStale()) return;
          const high = BigInt(batch.highWatermark);
          if (job.high === undefined || high > job.high) job.high = high;
          const entries: ChangelogEntry[] = [];
          for (const m of batch.messages) {
            const offset = BigInt(m.offset);
            // A batch fetched before the last seek may start earlier than the range.
            if (offset < job.next || offset >= job.to) continue;
            entries.push({ key: m.key?.toString('utf8') ?? '', value: m.value, offset });
          }
          const next = BigInt(batch.lastOffset()) + 1n;
          try {
            // Started in the same tick as the job was looked up, so `cancel` either sees it in
            // `applying` and waits for it, or has removed the job before it was looked up.
            if (entries.length > 0) {
              job.applying = job.apply(entries, next < job.to ? next : job.to);
              await job.applying;
            }
            this.advance(batch.partition, next);
          } catch (err) {
            if (this.jobs.get(batch.partition) === job) this.jobs.delete(batch.partition);
            job.fail(err);
          } finally {
            job.applying = undefined;
          }
        },
      });
      await this.whileRunning(() => consumer.pause({ topic: this.topic }));
    })();
    this.started = started;
    // A start that failed (the broker away) is tried again by the next read.
    started.catch(() => {
      if (this.started === started) this.started = undefined;
    });
    return started;
  }

  /** Each partition's bounds now. */
  async bounds(): Promise<Map<number, PartitionBounds>> {
    await this.start();
    const offsets = await this.admin.fetchTopicOffsets(this.topic);
    return new Map(offsets.map((o) => [o.partition, { low: BigInt(o.low), high: BigInt(o.high) }]));
  }

  /**
   * Reads `partition` from offset `from` up to `to` (exclusive), calling `apply` with each run of
   * entries, in offset order, and the offset reading will continue from; resolves after the last.
   */
  async read(
    partition: number,
    from: bigint,
    to: bigint,
    apply: (entries: ChangelogEntry[], next: bigint) => Promise<void>,
  ): Promise<void> {
    await this.start();
    if (from >= to) return;
    if (this.jobs.has(partition)) throw new Error(`changelog partition ${partition} is already being read`);
    let job!: ReadJob;
    const finished = new Promise<void>((done, fail) => {
      job = { next: from, to, apply, done, fail };
      this.jobs.set(partition, job);
    });
    // Handled below; a `stop` failing the job while the seek still waits must not be unhandled.
    finished.catch(() => {});
    try {
      await this.whileRunning(() => {
        this.consumer.seek({ topic: this.topic, partition, offset: from.toString() });
        this.consumer.resume({ topic: this.topic, partitions: [partition] });
      });
    } catch (err) {
      // Never started: a job left registered would refuse every later read of the partition.
      if (this.jobs.get(partition) === job) this.jobs.delete(partition);
      throw err;
    }
    try {
      await finished;
    } finally {
      await this.whileRunning(() => this.consumer.pause({ topic: this.topic, partitions: [partition] }));
    }
  }

  /**
   * Reads `partition` from offset `from` on, with no end: `apply` is called with each run of
   * entries as they are committed, in offset order, until `cancel(partition)`. The job is
   * registered before this returns to its caller's next tick, so a `cancel` right after finds it.
   * Resolves once cancelled; rejects when `apply` throws or the consumer is lost.
   */
  follow(
    partition: number,
    from: bigint,
    apply: (entries: ChangelogEntry[], next: bigint) => Promise<void>,
    high?: bigint,
  ): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('the changelog reader was stopped'));
    if (this.jobs.has(partition)) {
      return Promise.reject(new Error(`changelog partition ${partition} is already being read`));
    }
    let job!: ReadJob;
    const finished = new Promise<void>((done, fail) => {
      job = { next: from, to: FOREVER, apply, done, fail, ...(high === undefined ? {} : { high }) };
    });
    this.jobs.set(partition, job);
    void (async () => {
      try {
        await this.start();
        // Cancelled while starting: resuming now would fetch a partition nobody reads.
        if (job.cancelled || this.jobs.get(partition) !== job) return;
        await this.whileRunning(() => {
          this.consumer.seek({ topic: this.topic, partition, offset: from.toString() });
          this.consumer.resume({ topic: this.topic, partitions: [partition] });
        });
        job.resumed = true;
        // Cancelled while resuming (the group being rebuilt): `cancel` could not pause it.
        if (job.cancelled) {
          await this.whileRunning(() => this.consumer.pause({ topic: this.topic, partitions: [partition] }));
        }
      } catch (err) {
        if (this.jobs.get(partition) === job) this.jobs.delete(partition);
        job.fail(err);
      }
    })();
    return finished;
  }

  /**
   * How far the read of `partition` has come: the offset it continues from, and the partition's
   * end as last seen (undefined before the first fetch). Undefined when it is not being read.
   */
  progress(partition: number): { readonly next: bigint; readonly high: bigint | undefined } | undefined {
    const job = this.jobs.get(partition);
    return job && { next: job.next, high: job.high };
  }

  /**
   * Ends a `read` or `follow` of `partition`: no `apply` of it starts after this is called, and
   * this resolves once the one in progress (if any) has finished and the partition is paused.
   * The job's promise resolves (a `read` cut short resolves too: its caller asked for the end).
   */
  async cancel(partition: number): Promise<void> {
    const job = this.jobs.get(partition);
    if (!job) return;
    job.cancelled = true;
    this.jobs.delete(partition);
    try {
      await job.applying;
    } catch {
      // The failure went to the job's promise.
    }
    if (job.resumed && !this.stopped) {
      await this.whileRunning(() =>
        this.consumer.pause({ topic: this.topic, partitions: [partition] }),
      ).catch(() => {});
    }
    job.done();
  }

  /**
   * Runs a pause/resume/seek once the consumer's group exists. kafkajs drops and rebuilds the group
   * while it restarts after a crash in joining (as on a fresh broker whose group coordinator is not
   * up yet), and those calls throw in that window instead of waiting; so wait it out, bounded.
   */
  private async whileRunning(action: () => void, limitMs = 30_000): Promise<void> {
    const deadline = Date.now() + limitMs;
    for (;;) {
      try {
        action();
        return;
      } catch (err) {
        const restarting = err instanceof Error && /not initialized/i.test(err.message);
        if (!restarting || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async stop(): Promise<void> {
    // First, so a read started by a failing job's caller is refused rather than connecting again.
    this.stopped = true;
    for (const [partition, job] of this.jobs) {
      this.jobs.delete(partition);
      job.fail(new Error('the changelog reader was stopped'));
    }
    for (const consumer of [...this.consumers]) await this.retire(consumer).catch(() => {});
    await this.admin.disconnect();
  }

  /** Disconnects a consumer and forgets it (the set stays as small as the consumers alive). */
  private async retire(consumer: KafkaConsumer): Promise<void> {
    await consumer.disconnect();
    this.consumers.delete(consumer);
  }

  private advance(partition: number, next: bigint): void {
    const job = this.jobs.get(partition);
    if (!job) return;
    if (next > job.next) job.next = next;
    if (job.next >= job.to) {
      this.jobs.delete(partition);
      job.done();
    }
  }
}
