import type { Envelope, Rejected } from '../engine/types.js';
import { KafkaConsumerLostError } from '../errors.js';
import { DEFAULT_MAX_JSON_DEPTH } from '../events/jsonDepth.js';
import { DECODE_CEILINGS, type EventLimits } from '../events/limits.js';
import type { BatchContext, ConsumedMessage, KafkaClient, KafkaConsumer } from '../kafka/adapter.js';
import { kafkaEnvelope } from './kafkaEnvelope.js';

/** A run of consecutive messages of one input partition, decoded. */
export interface PartitionBatch {
  readonly topic: string;
  readonly partition: number;
  /** In offset order: an envelope for the engine, or the message's rejection. */
  readonly items: ReadonlyArray<Envelope | Rejected>;
  /** Each message's key, by offset, for dead letters. */
  readonly keys: Pick<ReadonlyMap<string, Buffer | null>, 'get'>;
  /** With a `decode` option: each message's value, by offset, so dead letters keep its bytes. */
  readonly values?: ReadonlyMap<string, Buffer | null>;
  /** The offset to commit once the batch is done: one past its last message. */
  readonly nextOffset: string;
  /** Whether the batch ends where the partition ended when it was fetched: no more is waiting now. */
  readonly caughtUp: boolean;
}

/** An input partition's offset to commit: everything before it is done and durable. */
export interface PartitionOffset {
  readonly partition: number;
  readonly offset: string;
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
   * Processes a batch. Resolving with nothing says its effects are durable and acknowledged, and
   * its offset is committed (with `commitOffsets`). A handler that makes effects durable once per
   * several batches resolves with the offsets whose effects are now durable instead (none, while it
   * holds them): only those are committed, and the batch counts as consumed (the next one
   * follows it; a rebalance or a `resync` goes back to what was committed). Throwing makes kafkajs
   * fetch the batch again (after a backoff, or at its new owner after a rebalance), and the
   * partition's next batch is preceded by `resync`.
   */
  batch(batch: PartitionBatch): Promise<readonly PartitionOffset[] | undefined>;
  /**
   * Called by `stop` once the batch in flight is done, before the consumer leaves the group and
   * while it can still commit: makes what the handler holds durable and resolves with the offsets
   * to commit. Not called when a rebalance the handler has not yet been told of came in between.
   */
  flush?(): Promise<readonly PartitionOffset[]>;
  /**
   * Called before the next batch of a partition whose previous `batch()` threw (its outcome may be
   * unknown: a commit Kafka applied while the client saw the broker vanish). Brings the partition's
   * state back to what Kafka holds and resolves with the offset Kafka committed for it, where
   * consumption resumes (messages before it are skipped, never processed again); `undefined` to
   * resume where the consumer stands.
   */
  resync(partition: number): Promise<bigint | undefined>;
}

/** What the source reports, for health and metrics. All optional. */
export interface KafkaSourceEvents {
  /** The consumer joined its group (a rebalance) and owns `partitions`. */
  joined?(partitions: readonly number[]): void;
  /** A response came from the broker (any consumer request). */
  brokerContact?(): void;
  /** A fetch came back (even empty). */
  fetched?(): void;
  /** A batch of `partition` committed; `lag` is the messages left after it at the last fetch. */
  committed?(partition: number, lag: bigint): void;
  /** A batch of `partition` was fetched with `lag` messages after its first. */
  lag?(partition: number, lag: bigint): void;
  /** Partitions no longer owned (their lag is no longer this instance's). */
  revoked?(partitions: readonly number[]): void;
  /** The consumer crashed; `restart`: kafkajs restarts it itself. */
  crashed?(error: Error, restart: boolean): void;
  /**
   * After a crash the client retried in place (@platformatic/kafka), the consumer is a member of its
   * group again, with the same partitions: no join (and no `joined`) follows such a retry.
   */
  resumed?(): void;
  /** A new consumer is joining after a crash kafkajs does not recover from (attempt counts from 1). */
  rejoining?(attempt: number, error: Error): void;
  /** Out of rejoins (or the policy is `exit`): the source gave up; the process should exit non-zero. */
  lost?(error: KafkaConsumerLostError): void;
}

/** What to do when the consumer crashes with an error kafkajs does not restart it after. */
export type ConsumerCrashPolicy = 'rejoin' | 'exit';

/**
 * Defaults of the consumer settings, shared by `cellstream kafka` and `serve`'s `kafka` section.
 * Session timeout and heartbeat are kafkajs's own defaults, spelled out so the docs can name them.
 */
/** How often partitions still to be resynced (`KafkaSource.distrust`) are tried again. */
const DISTRUSTED_RETRY_MS = 1000;

export const KAFKA_SOURCE_DEFAULTS = {
  maxBatch: 1000,
  maxWaitTimeInMs: 500,
  sessionTimeout: 30_000,
  heartbeatInterval: 3000,
  onConsumerCrash: 'rejoin' as ConsumerCrashPolicy,
  /** Rejoins in a row (no batch committed in between) before giving up. */
  maxRejoins: 5,
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
  /** After a crash kafkajs does not restart from: join again with a new consumer, or give up. Default `rejoin`. */
  readonly onConsumerCrash?: ConsumerCrashPolicy;
  /** Rejoins in a row without a committed batch before giving up. Default 5. */
  readonly maxRejoins?: number;
  /**
   * The engine's event limits, checked as each message becomes an envelope, so an event beyond
   * one is rejected (dead-lettered) here with the engine's code. Default: only what no store can hold.
   */
  readonly limits?: EventLimits;
  readonly events?: KafkaSourceEvents;
  /**
   * Turns a run of messages into envelopes (src/records: registry formats, CloudEvents); default
   * `kafkaEnvelope`, a JSON event per value. Throwing fails the batch, which is fetched again.
   */
  readonly decode?: (
    topic: string,
    partition: number,
    messages: readonly ConsumedMessage[],
    limits: EventLimits,
    now: number,
  ) => Promise<Array<Envelope | Rejected>>;
}

/**
 * A Kafka consumer-group source. Each partition's messages reach the handler in offset order, one
 * run at a time; the next fetch waits for the handler, so the engine's pace drives consumption.
 * Offsets move (and, with `commitOffsets`, are committed) only after `batch()` resolved.
 *
 * While the handler works (a restore can take longer than the session timeout) the source keeps
 * heartbeating, so the group does not drop the member. A crash kafkajs does not restart from
 * (e.g. `The coordinator is not aware of this member` on a commit) is met by a new consumer joining
 * the group, state kept, up to `maxRejoins` times in a row; then `events.lost` is called.
 */
export class KafkaSource {
  private readonly kafka: KafkaClient;
  private readonly options: KafkaSourceOptions;
  private readonly events: KafkaSourceEvents;
  private consumer: KafkaConsumer;
  /** Every consumer made (a new one per rejoin); `stop` disconnects all, so none outlives it. */
  private readonly consumers = new Set<KafkaConsumer>();
  private handler: KafkaSourceHandler | undefined;
  private owned = new Set<number>();
  private toAssign: number[] | undefined;
  private toRevoke: number[] = [];
  /** Partitions whose last batch failed: `resync` before their next one. */
  private readonly unsure = new Set<number>();
  /**
   * Partitions to resync now rather than before their next batch (which may not come): the handler
   * gave up what it held of them outside their own batch, or an idle flush failed. Kept until
   * resynced: after the handler call in hand, then every `DISTRUSTED_RETRY_MS` while any is left.
   */
  private readonly distrusted = new Set<number>();
  private distrustTimer: NodeJS.Timeout | undefined;
  private member = false;
  private stopping = false;
  private rejoins = 0;
  private lostError: KafkaConsumerLostError | undefined;
  private rejoinTimer: NodeJS.Timeout | undefined;
  /** The `eachBatch` call in progress, if any (one at a time: partitionsConsumedConcurrently 1). */
  private active: Promise<void> | undefined;
  /** Set by `drain`: what it does happens once. */
  private draining: Promise<void> | undefined;
  /** A `flushIdle` in progress: batches wait for it, so handler calls never overlap. */
  private idle: Promise<void> | undefined;

  constructor(kafka: KafkaClient, options: KafkaSourceOptions) {
    this.kafka = kafka;
    this.options = options;
    this.events = options.events ?? {};
    this.consumer = this.createConsumer();
  }

  private get heartbeatInterval(): number {
    return this.options.heartbeatInterval ?? KAFKA_SOURCE_DEFAULTS.heartbeatInterval;
  }

  private createConsumer(): KafkaConsumer {
    const { options } = this;
    const consumer = this.kafka.consumer({
      groupId: options.groupId,
      maxWaitTimeInMs: options.maxWaitTimeInMs ?? KAFKA_SOURCE_DEFAULTS.maxWaitTimeInMs,
      sessionTimeout: options.sessionTimeout ?? KAFKA_SOURCE_DEFAULTS.sessionTimeout,
      heartbeatInterval: this.heartbeatInterval,
      // kafkajs schedules its restart after a retriable crash even when the crash ends a join that
      // was still retrying as `disconnect` ran; that restarted consumer would outlive `stop`.
      restartOnFailure: async () => !this.stopping,
    });
    this.consumers.add(consumer);
    consumer.listen({
      // Told on every join, before fetching for the new generation.
      groupJoin: (assignment) => {
        if (consumer !== this.consumer) return;
        const now = new Set(assignment[options.topic] ?? []);
        for (const p of this.owned) if (!now.has(p)) this.toRevoke.push(p);
        this.owned = now;
        // The consumer starts every partition it owns from the committed offset again.
        this.distrusted.clear();
        this.toAssign = [...now].sort((a, b) => a - b);
        this.member = true;
        this.events.joined?.(this.toAssign);
      },
      crash: (error, restart) => {
        if (consumer !== this.consumer) return;
        this.member = false;
        this.events.crashed?.(error, restart);
        // The client restarts the consumer itself after a retriable error; not after the others.
        if (!restart && !this.stopping) this.afterFatalCrash(error);
      },
      resumed: () => {
        if (consumer !== this.consumer || this.stopping || this.member) return;
        this.member = true;
        this.events.resumed?.();
      },
      stop: () => {
        if (consumer === this.consumer) this.member = false;
      },
      request: () => this.events.brokerContact?.(),
      fetch: () => this.events.fetched?.(),
    });
    return consumer;
  }

  /** The consumer in use (a new one after a rejoin), whose group membership a transaction's offsets carry. */
  get currentConsumer(): KafkaConsumer {
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

  /** Set once the source gave up after crashes (see `KafkaSourceEvents.lost`). */
  get lost(): KafkaConsumerLostError | undefined {
    return this.lostError;
  }

  async start(handler: KafkaSourceHandler): Promise<void> {
    if (this.stopping) throw new Error('the Kafka source was stopped: make a new one');
    this.handler = handler;
    await this.run(this.consumer);
  }

  private async run(consumer: KafkaConsumer): Promise<void> {
    const { topic } = this.options;
    if (this.stopping) return;
    const handler = this.handler!;
    const maxBatch = this.options.maxBatch ?? KAFKA_SOURCE_DEFAULTS.maxBatch;
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: this.options.fromBeginning ?? true });
    // A rejoin that was connecting while `stop` ran must not start consuming after it.
    if (this.stopping) {
      await this.retire(consumer);
      return;
    }
    await consumer.run({
      autoResolve: false,
      eachBatch: (payload) => {
        if (this.stopping || consumer !== this.consumer) return Promise.resolve();
        const run = this.consume(consumer, payload, handler, maxBatch);
        this.active = run;
        return run.finally(() => {
          if (this.active === run) this.active = undefined;
        });
      },
    });
  }

  /**
   * A crash kafkajs does not restart from leaves the consumer out of the group for good: join with
   * a fresh consumer (state kept: every partition is restored again on assignment, cheaply when up
   * to date), or give up so a supervisor restarts the process.
   */
  private afterFatalCrash(error: Error): void {
    const policy = this.options.onConsumerCrash ?? KAFKA_SOURCE_DEFAULTS.onConsumerCrash;
    const max = this.options.maxRejoins ?? KAFKA_SOURCE_DEFAULTS.maxRejoins;
    if (policy === 'exit' || this.rejoins >= max) {
      this.lostError = new KafkaConsumerLostError(
        policy === 'exit'
          ? `the Kafka consumer of group '${this.options.groupId}' crashed (${error.message}) and the policy is to exit: restart the process (a supervisor should)`
          : `the Kafka consumer of group '${this.options.groupId}' crashed ${this.rejoins + 1} times in a row without committing a batch (last: ${error.message}): restart the process (a supervisor should) and check the broker`,
        { cause: error },
      );
      this.events.lost?.(this.lostError);
      return;
    }
    this.rejoins++;
    const attempt = this.rejoins;
    this.events.rejoining?.(attempt, error);
    // Every partition's state is checked against Kafka before it is consumed again.
    for (const p of this.owned) this.unsure.add(p);
    const delay = Math.min(1000 * 2 ** (attempt - 1), 5000);
    this.rejoinTimer = setTimeout(() => {
      this.rejoinTimer = undefined;
      if (this.stopping) return;
      const previous = this.consumer;
      const next = this.createConsumer();
      this.consumer = next;
      // The crashed one has left the group; disconnect it for good, so none of its timers remain.
      this.retire(previous).catch(() => {});
      this.run(next).catch((err: Error) => {
        // Connecting failed (the broker still away): that counts as another crash.
        if (next === this.consumer && !this.stopping) {
          this.events.crashed?.(err, false);
          this.afterFatalCrash(err);
        }
      });
    }, delay);
  }

  private async consume(
    consumer: KafkaConsumer,
    { batch, resolveOffset, heartbeat, isRunning, isStale }: BatchContext,
    handler: KafkaSourceHandler,
    maxBatch: number,
  ): Promise<void> {
    const { topic } = this.options;
    const alive = new Heartbeats(heartbeat, this.heartbeatInterval);
    try {
      // An idle flush can take a while (a failed one resyncs, re-reading changelogs): kafkajs does
      // not heartbeat while eachBatch waits, so this batch does, as during its own work.
      const idle = this.idle;
      if (idle) await alive.during(() => idle);
      await alive.during(() => this.settleAssignment(handler));
      if (!this.owned.has(batch.partition)) return;
      let messages = batch.messages;
      if (messages.length === 0) return;
      if (this.unsure.has(batch.partition)) {
        const committed = await alive.during(() => handler.resync(batch.partition));
        this.unsure.delete(batch.partition);
        if (committed !== undefined) {
          if (BigInt(messages[0].offset) > committed) {
            // The consumer stands past what Kafka committed: go back and fetch from there.
            consumer.seek({ topic, partition: batch.partition, offset: committed.toString() });
            return;
          }
          const skipped = messages.filter((m) => BigInt(m.offset) < committed);
          // Already committed by a transaction the client did not see finish: never again.
          if (skipped.length > 0) resolveOffset(skipped[skipped.length - 1].offset);
          messages = messages.slice(skipped.length);
        }
      }
      const high = BigInt(batch.highWatermark);
      // Past the last message: control records (transaction markers) that never reach the handler.
      const batchEnd = BigInt(batch.lastOffset()) + 1n;
      if (messages.length > 0) this.events.lag?.(batch.partition, high - BigInt(messages[0].offset));
      for (let start = 0; start < messages.length; start += maxBatch) {
        // Stop between runs on shutdown or seek; what is not resolved is fetched again.
        if (this.stopping || !isRunning() || isStale()) return;
        const run = messages.slice(start, start + maxBatch);
        const keys = messageKeys(run);
        // One clock reading per run for the ts bound, as the engine takes one per batch.
        const now = Date.now();
        const limits = this.options.limits ?? DECODE_CEILINGS;
        const last = run[run.length - 1].offset;
        const nextOffset = (BigInt(last) + 1n).toString();
        const lastRun = start + maxBatch >= messages.length;
        let done: readonly PartitionOffset[] | undefined;
        try {
          done = await alive.during(async () =>
            handler.batch({
              topic,
              partition: batch.partition,
              items: this.options.decode
                ? await this.options.decode(topic, batch.partition, run, limits, now)
                : run.map((m) =>
                    kafkaEnvelope(topic, batch.partition, m, DEFAULT_MAX_JSON_DEPTH, limits, now),
                  ),
              keys,
              ...(this.options.decode ? { values: new Map(run.map((m) => [m.offset, m.value])) } : {}),
              nextOffset,
              caughtUp: lastRun && batchEnd >= high,
            }),
          );
        } catch (err) {
          this.unsure.add(batch.partition);
          await alive.during(() => this.resyncDistrusted(handler));
          throw err;
        }
        resolveOffset(last);
        const commit = done ?? [{ partition: batch.partition, offset: nextOffset }];
        if (this.options.commitOffsets && commit.length > 0) {
          await consumer.commitOffsets(commit.map((o) => ({ topic, ...o })));
        }
        await alive.during(() => this.resyncDistrusted(handler));
        this.rejoins = 0;
        this.events.committed?.(batch.partition, high - (lastRun ? batchEnd : BigInt(nextOffset)));
        await heartbeat();
      }
    } finally {
      alive.stop();
    }
  }

  /**
   * Says that `partition`'s events since its committed offset must be handed over again: the
   * handler dropped what it held of them while handling another partition's batch or a flush (a
   * send of their predictions failed after that batch had returned). The partition is resynced —
   * its state brought back, the consumer moved back to the committed offset — once the handler call
   * in hand is done; if that fails, before its next batch.
   */
  distrust(partition: number): void {
    if (!this.owned.has(partition)) return;
    this.unsure.add(partition);
    this.distrusted.add(partition);
    this.retryDistrusted();
  }

  /**
   * Resyncs what is still distrusted in `DISTRUSTED_RETRY_MS`, between handler calls (the consumer
   * may be out of its group for a while, a resync may fail while the broker is away): a quiet
   * partition has no next batch to do it before, and its dropped events would wait for good.
   */
  private retryDistrusted(): void {
    if (this.distrustTimer || this.stopping) return;
    this.distrustTimer = setTimeout(() => {
      this.distrustTimer = undefined;
      const handler = this.handler;
      if (!handler || this.stopping || this.distrusted.size === 0) return;
      if (this.active || this.idle) {
        this.retryDistrusted();
        return;
      }
      // As an idle flush: a batch that comes meanwhile waits for it.
      const run = this.resyncDistrusted(handler).finally(() => {
        this.idle = undefined;
      });
      this.idle = run;
      run.catch(() => {});
    }, DISTRUSTED_RETRY_MS);
    this.distrustTimer.unref();
  }

  /**
   * The first half of `stop`: stops taking batches, lets the run in progress finish and commits
   * what is held, while still a member of the group. Members of one group stopping together
   * (`kafka.workers`) all drain before any leaves: a member's leaving rebalances the others, and a
   * rebalance before a member's own commit cancels it (its held events are redelivered instead).
   */
  drain(): Promise<void> {
    this.draining ??= (async () => {
      // kafkajs silently skips commitOffsets once disconnect() has begun (its runner is no longer
      // "running"), so the run in flight must finish, offsets committed, before the consumer stops.
      this.stopping = true;
      if (this.rejoinTimer) clearTimeout(this.rejoinTimer);
      await this.active?.catch(() => {});
      await this.idle;
      await this.flushHeld();
    })();
    return this.draining;
  }

  /** Stops taking batches, lets the run in progress finish and commit (`drain`), then leaves the group. */
  async stop(): Promise<void> {
    await this.drain();
    if (this.distrustTimer) clearTimeout(this.distrustTimer);
    // The current one first: it leaves the group, so its partitions move on at once.
    await this.retire(this.consumer);
    for (const consumer of [...this.consumers]) await this.retire(consumer).catch(() => {});
  }

  /**
   * Between batches: has the handler flush what it holds and commits the offsets it returns, for a
   * handler that holds batches and then sees no more (its partitions went quiet without a batch
   * that caught up). Does nothing while a batch runs (that batch commits in time), while another
   * flush runs, or once stopping.
   */
  async flushIdle(): Promise<void> {
    if (this.active || this.idle || this.stopping) return;
    const flush = this.flushHeld().finally(() => {
      this.idle = undefined;
    });
    this.idle = flush;
    await flush;
  }

  /**
   * What the handler holds, made durable and committed before leaving. After a rebalance it was not
   * told of, what it holds is another generation's, to be redelivered instead. A failure leaves
   * the held events to be redelivered (to this instance or the next owner): nothing is lost.
   */
  private async flushHeld(): Promise<void> {
    const handler = this.handler;
    if (!handler?.flush || !this.member || this.toAssign || this.toRevoke.length > 0) return;
    try {
      const offsets = await handler.flush();
      if (this.options.commitOffsets && offsets.length > 0) {
        const { topic } = this.options;
        await this.consumer.commitOffsets(offsets.map((o) => ({ topic, ...o })));
      }
      if (!this.stopping) await this.resyncDistrusted(handler);
    } catch {
      // The consumer stands past the held batches (they were resolved), and the handler may have
      // dropped them (exactly-once aborts their transaction): staying the owner, only going back to
      // what Kafka committed hands them over again. Leaving, the next owner starts there anyway.
      if (!this.stopping) await this.resyncOwned(handler);
    }
  }

  /**
   * Every owned partition back to what Kafka holds, now: a quiet partition may see no batch for
   * long, and until one came its held events would wait unprocessed. A partition whose resync
   * fails stays unsure, so its next batch is preceded by another.
   */
  private async resyncOwned(handler: KafkaSourceHandler): Promise<void> {
    for (const p of this.owned) {
      this.unsure.add(p);
      this.distrusted.add(p);
    }
    await this.resyncDistrusted(handler);
  }

  /**
   * Each distrusted partition still owned back to what Kafka holds: its state restored, the consumer
   * moved back to the committed offset. One that cannot be now stays distrusted (and unsure) and is
   * tried again later (`retryDistrusted`), unless a rebalance comes first, after which the consumer
   * starts from the committed offsets anyway.
   */
  private async resyncDistrusted(handler: KafkaSourceHandler): Promise<void> {
    const { topic } = this.options;
    for (const p of [...this.distrusted]) {
      if (!this.owned.has(p)) {
        this.distrusted.delete(p);
        continue;
      }
      // Out of the group or a rebalance pending: later.
      if (this.stopping || !this.member || this.toAssign || this.toRevoke.length > 0) break;
      try {
        const committed = await handler.resync(p);
        if (committed !== undefined)
          this.consumer.seek({ topic, partition: p, offset: committed.toString() });
        this.unsure.delete(p);
        this.distrusted.delete(p);
      } catch {}
    }
    if (this.distrusted.size > 0) this.retryDistrusted();
  }

  /** Disconnects a consumer and forgets it (the set stays as small as the consumers alive). */
  private async retire(consumer: KafkaConsumer): Promise<void> {
    await consumer.disconnect();
    this.consumers.delete(consumer);
  }

  private async settleAssignment(handler: KafkaSourceHandler): Promise<void> {
    if (this.toRevoke.length > 0) {
      const revoked = this.toRevoke;
      this.toRevoke = [];
      for (const p of revoked) this.unsure.delete(p);
      this.events.revoked?.(revoked);
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

/**
 * The keys of `run` by offset, looked up only for dead letters: the map is made on the first
 * look-up, so a batch without one allocates nothing per message.
 */
function messageKeys(run: readonly ConsumedMessage[]): Pick<ReadonlyMap<string, Buffer | null>, 'get'> {
  let byOffset: Map<string, Buffer | null> | undefined;
  return {
    get(offset: string) {
      byOffset ??= new Map(run.map((m) => [m.offset, m.key]));
      return byOffset.get(offset);
    },
  };
}

/**
 * Heartbeats every `intervalMs` while a piece of work runs. kafkajs heartbeats only between fetches
 * and when asked, so without this a restore longer than the session timeout costs the membership.
 * Failures are left to the next regular heartbeat (a rebalance is noticed there).
 */
class Heartbeats {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly heartbeat: () => Promise<void>,
    private readonly intervalMs: number,
  ) {}

  async during<T>(work: () => Promise<T>): Promise<T> {
    this.timer ??= setInterval(() => {
      this.heartbeat().catch(() => {});
    }, this.intervalMs);
    try {
      return await work();
    } finally {
      this.stop();
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
