import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import type { Envelope, Rejected } from '../engine/types.js';
import { kafkaEnvelope } from './kafkaEnvelope.js';

/** A run of consecutive messages of one input partition, decoded. */
export interface PartitionBatch {
  readonly topic: string;
  readonly partition: number;
  /** In offset order: an envelope for the engine, or the message's rejection. */
  readonly items: ReadonlyArray<Envelope | Rejected>;
  /** Each message's key, by offset, for dead letters. */
  readonly keys: ReadonlyMap<string, Buffer | null>;
  /** The offset to commit once the batch is done: one past its last message. */
  readonly nextOffset: string;
}

/** What the source drives. Calls never overlap. */
export interface KafkaSourceHandler {
  /**
   * Partitions this instance owns since the latest rebalance, all of them (kept ones included,
   * since another instance may have had them in between), before any of their batches.
   */
  assigned(partitions: readonly number[]): Promise<void>;
  /** Partitions taken away by the latest rebalance. */
  revoked(partitions: readonly number[]): Promise<void>;
  /**
   * Processes a batch; resolves once its effects are durable and acknowledged. Throwing makes
   * kafkajs fetch the batch again (after a backoff, or at its new owner after a rebalance).
   */
  batch(batch: PartitionBatch): Promise<void>;
}

/**
 * Defaults of the consumer settings, shared by `cellstream kafka` and `serve`'s `kafka` section.
 * Session timeout and heartbeat are kafkajs's own defaults, spelled out so the docs can name them.
 */
export const KAFKA_SOURCE_DEFAULTS = {
  maxBatch: 1000,
  maxWaitTimeInMs: 500,
  sessionTimeout: 30_000,
  heartbeatInterval: 3000,
} as const;

export interface KafkaSourceOptions {
  readonly topic: string;
  readonly groupId: string;
  /**
   * `true`: the source commits a batch's offsets to the group once `batch()` resolved. `false`:
   * the handler commits them itself (in a transaction, with `sendOffsets`).
   */
  readonly commitOffsets: boolean;
  /** Most messages per `batch()` call; a fetched batch is cut into runs of this size. Default 1000. */
  readonly maxBatch?: number;
  /** Longest a fetch waits for data, ms; `stop()` waits up to this long. Default 500. */
  readonly maxWaitTimeInMs?: number;
  readonly sessionTimeout?: number;
  readonly heartbeatInterval?: number;
  readonly fromBeginning?: boolean;
}

/**
 * A Kafka consumer-group source. Each partition's messages reach the handler in offset order, one
 * run at a time; the next fetch waits for the handler, so the engine's pace drives consumption.
 * Offsets move (and, with `commitOffsets`, are committed) only after `batch()` resolved.
 */
export class KafkaSource {
  private readonly consumer: Consumer;
  private readonly options: KafkaSourceOptions;
  private owned = new Set<number>();
  private toAssign: number[] | undefined;
  private toRevoke: number[] = [];
  private member = false;
  private stopping = false;
  /** The `eachBatch` call in progress, if any (one at a time: partitionsConsumedConcurrently 1). */
  private active: Promise<void> | undefined;

  constructor(kafka: Kafka, options: KafkaSourceOptions) {
    this.options = options;
    this.consumer = kafka.consumer({
      groupId: options.groupId,
      maxWaitTimeInMs: options.maxWaitTimeInMs ?? KAFKA_SOURCE_DEFAULTS.maxWaitTimeInMs,
      sessionTimeout: options.sessionTimeout ?? KAFKA_SOURCE_DEFAULTS.sessionTimeout,
      heartbeatInterval: options.heartbeatInterval ?? KAFKA_SOURCE_DEFAULTS.heartbeatInterval,
      allowAutoTopicCreation: false,
    });
    // kafkajs emits this synchronously on every join, before fetching for the new generation.
    this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => {
      const now = new Set(payload.memberAssignment[options.topic] ?? []);
      for (const p of this.owned) if (!now.has(p)) this.toRevoke.push(p);
      this.owned = now;
      this.toAssign = [...now].sort((a, b) => a - b);
      this.member = true;
    });
    // A crash leaves the group; kafkajs re-joins by itself when it restarts the consumer.
    this.consumer.on(this.consumer.events.CRASH, () => {
      this.member = false;
    });
    this.consumer.on(this.consumer.events.STOP, () => {
      this.member = false;
    });
  }

  /** The consumer, for `sendOffsets` and instrumentation events. */
  get kafkaConsumer(): Consumer {
    return this.consumer;
  }

  /** Whether the consumer is a member of its group (joined, not crashed, not stopped). */
  get joined(): boolean {
    return this.member;
  }

  /** Partitions owned since the latest rebalance. */
  get partitions(): readonly number[] {
    return [...this.owned];
  }

  async start(handler: KafkaSourceHandler): Promise<void> {
    const { topic } = this.options;
    const maxBatch = this.options.maxBatch ?? KAFKA_SOURCE_DEFAULTS.maxBatch;
    await this.consumer.connect();
    await this.consumer.subscribe({ topic, fromBeginning: this.options.fromBeginning ?? true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (payload) => {
        if (this.stopping) return Promise.resolve();
        const run = this.consume(payload, handler, maxBatch);
        this.active = run;
        return run.finally(() => {
          if (this.active === run) this.active = undefined;
        });
      },
    });
  }

  private async consume(
    { batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload,
    handler: KafkaSourceHandler,
    maxBatch: number,
  ): Promise<void> {
    const { topic } = this.options;
    await this.settleAssignment(handler);
    if (!this.owned.has(batch.partition)) return;
    const messages = batch.messages as KafkaMessage[];
    for (let start = 0; start < messages.length; start += maxBatch) {
      // Stop between runs on shutdown or seek; what is not resolved is fetched again.
      if (this.stopping || !isRunning() || isStale()) return;
      const run = messages.slice(start, start + maxBatch);
      const keys = new Map(run.map((m) => [m.offset, m.key]));
      const last = run[run.length - 1].offset;
      const nextOffset = (BigInt(last) + 1n).toString();
      await handler.batch({
        topic,
        partition: batch.partition,
        items: run.map((m) => kafkaEnvelope(topic, batch.partition, m)),
        keys,
        nextOffset,
      });
      resolveOffset(last);
      if (this.options.commitOffsets) {
        await this.consumer.commitOffsets([{ topic, partition: batch.partition, offset: nextOffset }]);
      }
      await heartbeat();
    }
  }

  /** Stops taking batches, lets the run in progress finish and commit, then leaves the group. */
  async stop(): Promise<void> {
    // kafkajs silently skips commitOffsets once disconnect() has begun (its runner is no longer
    // "running"), so the run in flight must finish, offsets committed, before the consumer stops.
    this.stopping = true;
    await this.active?.catch(() => {});
    await this.consumer.disconnect();
  }

  private async settleAssignment(handler: KafkaSourceHandler): Promise<void> {
    if (this.toRevoke.length > 0) {
      const revoked = this.toRevoke;
      this.toRevoke = [];
      await handler.revoked(revoked);
    }
    if (this.toAssign) {
      const assigned = this.toAssign;
      this.toAssign = undefined;
      try {
        await handler.assigned(assigned);
      } catch (err) {
        this.toAssign ??= assigned;
        throw err;
      }
    }
  }
}
