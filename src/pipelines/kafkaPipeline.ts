import { randomUUID } from 'node:crypto';
import { KeyedStepper } from '../engine/keyedStepper.js';
import type { Envelope, Rejected } from '../engine/types.js';
import { ConfigError, EventError, FencedError, type KafkaConsumerLostError } from '../errors.js';
import { decodeEvent } from '../events/decode.js';
import { type EventLimits, eventLimits } from '../events/limits.js';
import type { Prediction } from '../events/types.js';
import { modelFeatures } from '../features/modelFeatures.js';
import type {
  KafkaClient,
  KafkaClientName,
  KafkaLogLevel,
  KafkaProducer,
  KafkaTransaction,
} from '../kafka/adapter.js';
import { createKafka } from '../kafka/client.js';
import { kafkaErrorText, mapFenced, retryConcurrentTransactions } from '../kafka/kafkaErrors.js';
import { ensureTopics } from '../kafka/topics.js';
import { outputSize } from '../model/index.js';
import type { Model } from '../model/types.js';
import { type RecordFormatOptions, recordFormats } from '../records/formats.js';
import { KafkaSink } from '../sinks/kafkaSink.js';
import {
  type ConsumerCrashPolicy,
  KAFKA_SOURCE_DEFAULTS,
  KafkaSource,
  type PartitionBatch,
  type PartitionOffset,
} from '../sources/kafkaSource.js';
import { ChangelogFollower } from '../state/changelogFollower.js';
import { ChangelogReader } from '../state/changelogReader.js';
import {
  ChangelogStore,
  type RestoreReport,
  type UnreadableChangelogRecord,
} from '../state/changelogStore.js';
import { LmdbStore } from '../state/lmdbStore.js';
import { StagedStore } from '../state/stagedStore.js';
import { KAFKA_COMMIT_DEFAULTS } from './commitDefaults.js';
import { KAFKA_HEALTH_DEFAULTS, KafkaHealth, type KafkaHealthObserver } from './kafkaHealth.js';
import { PartitionProducers } from './partitionProducers.js';
import { RepeatThrottle } from './repeatThrottle.js';
import { SendAhead } from './sendAhead.js';

export interface KafkaPipelineOptions extends RecordFormatOptions {
  readonly model: Model;
  readonly brokers: readonly string[];
  readonly inputTopic: string;
  readonly outputTopic: string;
  readonly deadLetterTopic: string;
  /** Compacted state changelog; default `${groupId}-state-changelog`. Created like the input when missing. */
  readonly changelogTopic?: string;
  readonly groupId: string;
  /** Directory of this instance's LMDB state. */
  readonly stateDir: string;
  /** Predictions, changelog records and consumed offsets in one Kafka transaction per partition and commit. */
  readonly exactlyOnce?: boolean;
  /** Prefix of the transactional ids; default `groupId`. The same for every instance of the app. */
  readonly appId?: string;
  /** Partitions to create the input topic with when it does not exist (default: refuse to start). */
  readonly inputPartitions?: number;
  /** Most events per engine batch. Default 1000. */
  readonly maxBatch?: number;
  /**
   * Longest a partition's state is held in memory (its keys' changelog records written once, with
   * their last state) before it is made durable and its offsets committed, ms, while events are
   * waiting; a batch that catches up with its partition commits at once. In exactly-once mode one
   * transaction spans the interval. Default 1000; 0 commits every batch.
   */
  readonly commitIntervalMs?: number;
  /** Most keys held in memory before a commit, whatever the interval. Default 20,000. */
  readonly maxCachedKeys?: number;
  readonly maxWaitTimeInMs?: number;
  readonly sessionTimeout?: number;
  readonly heartbeatInterval?: number;
  readonly onModelMismatch?: 'reset' | 'refuse';
  /** After a crash kafkajs does not restart from: rejoin with a new consumer, or give up. Default `rejoin`. */
  readonly onConsumerCrash?: ConsumerCrashPolicy;
  /** Rejoins in a row without a committed batch before giving up (`onLost`). Default 5. */
  readonly maxRejoins?: number;
  /** No batch committed for this long while events wait is a stall: not ready, reported once. Default 60 s. */
  readonly stallTimeoutMs?: number;
  /** Counts rebalances, crashes, rejoins, restores (e.g. the Prometheus metrics), from the start. */
  readonly healthObserver?: KafkaHealthObserver;
  /**
   * Fault injection for tests: each restore on assignment but the first waits this long, as on a
   * slow disk, so that it outlasts the session timeout. `cellstream kafka` reads it from
   * `CELLSTREAM_FAULT_SLOW_RESTORE_MS`. Default 0.
   */
  readonly slowRestoreMs?: number;
  /** Called once when a stall begins, with why and what to do. */
  readonly onStall?: (message: string) => void;
  /** Called when a stall ends. */
  readonly onStallEnd?: () => void;
  /** Called when the consumer crashed and a new one joins the group (the crash's error). */
  readonly onRejoin?: (attempt: number, error: Error) => void;
  /**
   * Called when a fetch or a batch failed and the client retries it itself (the same consumer,
   * after a backoff): at once the first time, then at most once per `KAFKA_RETRY_REPORT_MS` with
   * how many failures came since the last call. A partition that fails again and again makes no
   * progress, and this says why.
   */
  readonly onConsumerRetry?: (error: Error, repeats: number) => void;
  /**
   * Called once when the consumer is lost for good (policy `exit`, or `maxRejoins` exhausted): the
   * instance consumes no more, and the process should exit non-zero so that a supervisor restarts it.
   */
  readonly onLost?: (error: KafkaConsumerLostError) => void;
  /** Bounds on each event (see `KeyedStepperOptions.limits`); an event beyond one is dead-lettered with its code. */
  readonly limits?: Partial<EventLimits>;
  /** Ids remembered per key (see `KeyedStepperOptions.idWindow`). */
  readonly idWindow?: number;
  /** The `model` field of predictions; default `name@version` (see `KeyedStepperOptions.modelLabel`). */
  readonly modelLabel?: string;
  readonly clientId?: string;
  /** Which Kafka client library; default `kafkajs` (docs/kafka.md). */
  readonly client?: KafkaClientName;
  readonly logLevel?: KafkaLogLevel;
  /**
   * Standby state: 1 follows the changelog of every partition this instance does not own into its
   * local store, so a partition it takes over restores only the changelog's tail (docs/state.md,
   * Standby state). Default 0: none.
   */
  readonly standbys?: number;
  /** Following a changelog partition as a standby failed; it is tried again after a second. */
  readonly onStandbyError?: (partition: number, error: Error) => void;
  /** Changelog records a standby could not apply as states (as a restore reports them). */
  readonly onStandbyUnreadable?: (records: readonly UnreadableChangelogRecord[]) => void;
  /** Called after each restore, e.g. for logs and metrics. */
  readonly onRestore?: (reports: readonly RestoreReport[], ms: number) => void;
  /**
   * Called once per batch after its predictions are acknowledged by Kafka and its state is durable
   * (in exactly-once mode: after the transaction committed), so whoever is told (WebSocket
   * subscribers, metrics) never sees a prediction Kafka does not have.
   */
  readonly onBatch?: (report: KafkaBatchReport) => void;
  /**
   * For the benchmark's baseline only: no inference and no state. Each event is decoded and sent
   * on as a prediction (seq 0) whose `output` has the model's output width (the event's first
   * features, zero-padded), so its messages are the size the model's are, through the same
   * source, sink, producer and offset commits: the time left over is Kafka's and the client's.
   * At-least-once only.
   */
  readonly passthrough?: boolean;
}

/** A rejected record's original bytes, when the source kept them (binary formats). */
const originalOf = (batch: PartitionBatch) => (r: Rejected) =>
  r.position.kind === 'offset' ? (batch.values?.get(r.position.offset) ?? null) : null;

/** The client's retry policy: kafkajs's, with the backoff capped at 5 s and more attempts. */
export const KAFKA_RETRY = { initialRetryTime: 300, maxRetryTime: 5000, retries: 8 } as const;

/** Failures the client retries in place are told at most this often (`onConsumerRetry`). */
export const KAFKA_RETRY_REPORT_MS = 30_000;

/** What one batch of one input partition did. */
export interface KafkaBatchReport {
  readonly partition: number;
  /** Messages in the batch, poison included. */
  readonly events: number;
  /** Predictions of events applied for the first time (redeliveries' repeats are left out). */
  readonly fresh: readonly Prediction[];
  /**
   * Predictions sent to the output topic: at-least-once, repeats of redeliveries included;
   * exactly-once, only fresh ones (a redelivered event's prediction was committed with its state).
   */
  readonly predictions: number;
  /** Dead-lettered events. */
  readonly rejected: readonly Rejected[];
  readonly duplicates: number;
  /** Time the engine took to step the batch. */
  readonly stepSeconds: number;
  /** Time from the batch reaching the pipeline to its results being durable in Kafka. */
  readonly seconds: number;
}

/** Counts since start. */
export interface KafkaPipelineStats {
  predictions: number;
  rejected: number;
  duplicates: number;
  batches: number;
  restoredRecords: number;
  /** Changelog records a standby wrote into the local store for partitions not owned. */
  standbyRecords: number;
}

/** Counts before the first batch. */
export function emptyPipelineStats(): KafkaPipelineStats {
  return { predictions: 0, rejected: 0, duplicates: 0, batches: 0, restoredRecords: 0, standbyRecords: 0 };
}

export interface KafkaPipeline {
  readonly stats: Readonly<KafkaPipelineStats>;
  /** The `model` field of its predictions. */
  readonly modelLabel: string;
  /** The durable state (LMDB as the changelog backs it), for look-ups; not staged, so never ahead of Kafka. */
  readonly store: ChangelogStore;
  /** Whether the consumer is a member of its group: joined, not crashed, not stopped. */
  readonly joined: () => boolean;
  /** Input partitions this instance owns. */
  readonly partitions: () => readonly number[];
  /** Changelog partitions followed as a standby now (none without `standbys`). */
  readonly standbyPartitions: () => readonly number[];
  /** Membership, restore, lag, progress, crashes: what `/readyz` and the Kafka metrics read. */
  readonly health: KafkaHealth;
  /** The consumer group. */
  readonly groupId: string;
  /** Rejects with `KafkaConsumerLostError` once the consumer is lost for good; never resolves. */
  readonly lost: Promise<never>;
  /**
   * The first half of `stop`: stops fetching, finishes the batch in flight and commits what it
   * holds, still a member of the group (see `KafkaSource.drain`). `stop` drains first anyway.
   */
  drain(): Promise<void>;
  /** Stops fetching, finishes the batch in flight, commits what it holds (state durable, offsets committed), leaves the group, closes. */
  stop(): Promise<void>;
}

export { KAFKA_COMMIT_DEFAULTS };

/**
 * Kafka in, Kafka out: events from `inputTopic` (keyed by entity key) through the engine, predictions
 * to `outputTopic`, rejections to `deadLetterTopic`, state in LMDB backed by a compacted changelog.
 *
 * Per batch of one partition: step (state staged in memory), send predictions and dead letters.
 * The staged state is held across batches (each key's latest record) until a commit: every
 * `commitIntervalMs`, at `maxCachedKeys`, when a batch catches up with its partition, or on stop;
 * then it is made durable (changelog, each key once, then LMDB) and only then the offsets it
 * covers commit. A crash anywhere redelivers events whose state did not become durable, and they
 * recompute identical predictions; events whose state did are recognised and not stepped again.
 * With `exactlyOnce`, a partition's sends from its first held batch to the commit, its changelog
 * records and its offset commit in one transaction, and LMDB follows the commit.
 */
export async function startKafkaPipeline(options: KafkaPipelineOptions): Promise<KafkaPipeline> {
  const opened: Array<() => Promise<unknown>> = [];
  try {
    return await assemblePipeline(options, opened);
  } catch (err) {
    // A start that fails part-way closes what it had opened: a connected client left behind kept
    // the process alive, and a worker thread too, whose instance waited for it to end for good.
    for (const close of opened.reverse()) await close().catch(() => {});
    throw err;
  }
}

/** `startKafkaPipeline`, telling `opened` how to close each thing it opens, in order. */
async function assemblePipeline(
  options: KafkaPipelineOptions,
  opened: Array<() => Promise<unknown>>,
): Promise<KafkaPipeline> {
  const standbys = options.standbys ?? 0;
  if (!Number.isInteger(standbys) || standbys < 0 || standbys > 1)
    throw new ConfigError(
      `kafka.standbys must be 0 or 1, not ${standbys}: 1 follows every changelog partition not owned (fewer copies cannot be placed yet)`,
    );
  const kafka: KafkaClient = await createKafka({
    brokers: options.brokers,
    clientId: options.clientId ?? `cellstream-${options.groupId}`,
    ...(options.client === undefined ? {} : { client: options.client }),
    ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
    // kafkajs backs off up to 30 s between attempts by default: after the broker's return a
    // consumer could sit that long before trying again. Capped at 5 s, it is back within seconds.
    retry: KAFKA_RETRY,
  });
  const changelogTopic = options.changelogTopic ?? `${options.groupId}-state-changelog`;
  const exactlyOnce = options.exactlyOnce ?? false;
  if (options.passthrough && exactlyOnce)
    throw new RangeError('the passthrough baseline is at-least-once only');

  // First: a registry that refuses the output schema stops the start before anything is joined.
  const formats = await recordFormats(options.model, options.outputTopic, options);
  const admin = kafka.admin();
  await admin.connect();
  let partitions: number;
  try {
    const input = await ensureTopics(
      admin,
      options.inputPartitions === undefined
        ? []
        : [{ topic: options.inputTopic, partitions: options.inputPartitions }],
    );
    const count =
      input.get(options.inputTopic) ??
      (await admin.partitionCounts([options.inputTopic])).get(options.inputTopic);
    if (count === undefined) throw new Error(`Kafka topic '${options.inputTopic}' does not exist`);
    partitions = count;
    await ensureTopics(admin, [
      { topic: changelogTopic, partitions, compacted: true, mustMatch: true },
      { topic: options.outputTopic, partitions },
      { topic: options.deadLetterTopic, partitions },
    ]);
  } finally {
    await admin.disconnect();
  }

  const producer: KafkaProducer = kafka.producer();
  opened.push(() => producer.disconnect());
  await producer.connect();
  const transactional = new PartitionProducers(kafka, options.appId ?? options.groupId, options.inputTopic);
  opened.push(() => transactional.releaseAll());
  const local = await LmdbStore.open({ path: options.stateDir });
  opened.push(() => local.close());

  const changelog = new ChangelogStore({
    local,
    topic: changelogTopic,
    partitions,
    sourceTopic: options.inputTopic,
    producer,
    // At-least-once nothing fences a stale writer's late record; exactly-once does (docs/kafka.md).
    keepLaterPosition: !exactlyOnce,
  });
  const staged = new StagedStore(changelog);
  const features = modelFeatures(options.model);
  const stepper = new KeyedStepper({
    model: options.model,
    store: staged,
    encodeValues: features?.encodeValues,
    decodePrediction: features?.decode,
    ...(options.onModelMismatch === undefined ? {} : { onModelMismatch: options.onModelMismatch }),
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.idWindow === undefined ? {} : { idWindow: options.idWindow }),
    ...(options.modelLabel === undefined ? {} : { modelLabel: options.modelLabel }),
  });
  const sessionTimeout = options.sessionTimeout ?? KAFKA_SOURCE_DEFAULTS.sessionTimeout;
  const reader = new ChangelogReader(kafka, {
    topic: changelogTopic,
    groupId: `${options.groupId}-restore-${randomUUID()}`,
    // After a broker's return the reader's rejoin waits out its old member's session, and every
    // restore and resync waits for the reader: no longer than the consumer's own rejoin, then.
    sessionTimeout,
    heartbeatInterval: options.heartbeatInterval ?? KAFKA_SOURCE_DEFAULTS.heartbeatInterval,
  });
  opened.push(() => reader.stop());
  await reader.start();
  // Reads the offsets the group committed, to resume from them after a batch of unknown outcome.
  const offsetsAdmin = kafka.admin();
  opened.push(() => offsetsAdmin.disconnect());
  await offsetsAdmin.connect();
  const health = new KafkaHealth({
    stallTimeoutMs: options.stallTimeoutMs ?? KAFKA_HEALTH_DEFAULTS.stallTimeoutMs,
    brokerTimeoutMs: Math.max(sessionTimeout, 10_000),
    ...(options.onStall ? { onStall: options.onStall } : {}),
    ...(options.onStallEnd ? { onRecover: options.onStallEnd } : {}),
  });
  if (options.healthObserver) health.observe(options.healthObserver);
  health.watch();
  const onRetry = options.onConsumerRetry;
  const retries = onRetry ? new RepeatThrottle(onRetry, KAFKA_RETRY_REPORT_MS) : undefined;
  opened.push(async () => health.close());
  let reportLost: (err: KafkaConsumerLostError) => void = () => {};
  const lost = new Promise<never>((_, reject) => {
    reportLost = reject;
  });
  lost.catch(() => {});
  const sink = new KafkaSink({
    outputTopic: options.outputTopic,
    deadLetterTopic: options.deadLetterTopic,
    ...(formats.encodePrediction ? { encodePrediction: formats.encodePrediction } : {}),
  });
  const source = new KafkaSource(kafka, {
    topic: options.inputTopic,
    groupId: options.groupId,
    commitOffsets: !exactlyOnce,
    ...(options.maxBatch === undefined ? {} : { maxBatch: options.maxBatch }),
    ...(options.maxWaitTimeInMs === undefined ? {} : { maxWaitTimeInMs: options.maxWaitTimeInMs }),
    ...(options.sessionTimeout === undefined ? {} : { sessionTimeout: options.sessionTimeout }),
    ...(options.heartbeatInterval === undefined ? {} : { heartbeatInterval: options.heartbeatInterval }),
    ...(options.onConsumerCrash === undefined ? {} : { onConsumerCrash: options.onConsumerCrash }),
    ...(options.maxRejoins === undefined ? {} : { maxRejoins: options.maxRejoins }),
    // The stepper's own limits, so the source dead-letters what the stepper would refuse.
    limits: eventLimits(options.limits),
    ...(formats.decode ? { decode: formats.decode } : {}),
    events: {
      joined: (ps) => {
        health.joined(ps);
        void measureAssignedLag(ps);
      },
      revoked: (ps) => health.revoked(ps),
      brokerContact: () => health.brokerContact(),
      fetched: () => health.fetched(),
      lag: (p, n) => health.lag(p, n),
      committed: (p, n) => health.committed(p, n),
      crashed: (err, restart) => {
        health.crashed(restart);
        if (restart) retries?.report(new Error(kafkaErrorText(err), { cause: err }));
      },
      resumed: () => health.resumed(),
      rejoining: (attempt, err) => {
        health.rejoining();
        options.onRejoin?.(attempt, new Error(kafkaErrorText(err), { cause: err }));
      },
      lost: (err) => {
        health.lost(err.message);
        reportLost(err);
        options.onLost?.(err);
      },
    },
  });

  const stats = emptyPipelineStats();
  // Its own reader: a restore must not wait behind the follower's fetches, nor the follower's
  // partitions be paused by a restore's.
  const standbyReader =
    standbys > 0 && !options.passthrough
      ? new ChangelogReader(kafka, {
          topic: changelogTopic,
          groupId: `${options.groupId}-standby-${randomUUID()}`,
          maxWaitTimeInMs: options.maxWaitTimeInMs ?? KAFKA_SOURCE_DEFAULTS.maxWaitTimeInMs,
          sessionTimeout,
          heartbeatInterval: options.heartbeatInterval ?? KAFKA_SOURCE_DEFAULTS.heartbeatInterval,
        })
      : undefined;
  const follower = standbyReader
    ? new ChangelogFollower(changelog, standbyReader, {
        onApplied: (_p, n) => {
          stats.standbyRecords += n;
          health.standbyApplied(n);
        },
        ...(options.onStandbyUnreadable ? { onUnreadable: options.onStandbyUnreadable } : {}),
        ...(options.onStandbyError ? { onError: options.onStandbyError } : {}),
      })
    : undefined;
  if (follower) {
    const f = follower;
    health.standbyFrom({
      get partitions() {
        return f.partitions;
      },
      lag: () => f.lag(),
      positions: () => f.positions(),
      get records() {
        return stats.standbyRecords;
      },
    });
  }
  /**
   * Each newly owned partition's lag from the group's committed offset, so that every owned
   * partition has a lag before its first fetch (a drained one may not be fetched for a long time).
   * Off the join's path; a failure leaves the lag unknown until a fetch, as before.
   */
  const measureAssignedLag = async (ps: readonly number[]): Promise<void> => {
    if (ps.length === 0) return;
    const generation = health.generation();
    try {
      const [ends, committed] = await Promise.all([
        offsetsAdmin.fetchTopicOffsets(options.inputTopic),
        offsetsAdmin.fetchCommittedOffsets(options.groupId, options.inputTopic, ps),
      ]);
      for (const { partition, offset } of committed) {
        const end = ends.find((e) => e.partition === partition);
        if (!end) continue;
        const from = BigInt(offset) >= 0n ? BigInt(offset) : BigInt(end.low);
        health.lagAtAssignment(generation, partition, BigInt(end.high) - from);
      }
    } catch {}
  };
  const allPartitions = Array.from({ length: partitions }, (_, p) => p);
  // Before the first join: by the time the group has assigned partitions, much of the changelog
  // may be local already, and the first restore reads less.
  opened.push(async () => {
    await follower?.stop();
    await standbyReader?.stop();
  });
  follower?.follow(allPartitions);
  // Partitions whose local state may lag the changelog after a failed batch.
  const stale = new Set<number>();

  let assignments = 0;
  const restore = async (ps: readonly number[], delayMs = 0) => {
    const started = performance.now();
    health.restoreStarted();
    let reports: RestoreReport[];
    try {
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      reports = await changelog.restore(ps, reader);
    } catch (err) {
      health.restoreFailed();
      throw err;
    }
    const ms = performance.now() - started;
    const records = reports.reduce((n, r) => n + r.records, 0);
    stats.restoredRecords += records;
    health.restoreFinished(
      ms / 1000,
      records,
      reports.reduce((n, r) => n + r.unreadable.length, 0),
    );
    options.onRestore?.(reports, ms);
  };

  /**
   * After a failed batch, whose outcome may be unknown (the broker vanished during the commit, which
   * may have gone through): take the partition's transactional id over again, which makes the
   * coordinator finish that transaction one way or the other; re-read the partition's state from
   * the changelog (read_committed, so it holds the batch's steps exactly if it committed); and
   * resume from the offset the group committed, so a committed batch is never processed again.
   */
  const resync = async (partition: number): Promise<bigint | undefined> => {
    await dropHeld(partition);
    if (exactlyOnce) {
      await transactional.release([partition]);
      await transactional.acquire([partition]);
    }
    await restore([partition]);
    stale.delete(partition);
    health.resynced();
    const committed = await offsetsAdmin.fetchCommittedOffsets(options.groupId, options.inputTopic, [
      partition,
    ]);
    const offset = committed.find((p) => p.partition === partition)?.offset;
    // Nothing committed yet: the batches held before the failure were dropped, so from the start.
    return offset === undefined || BigInt(offset) < 0n ? 0n : BigInt(offset);
  };

  const passthroughWidth = outputSize(options.model);
  const passthrough = async (batch: PartitionBatch): Promise<undefined> => {
    const predictions: Prediction[] = [];
    const rejected: Rejected[] = [];
    for (const item of batch.items) {
      if ('kind' in item) {
        rejected.push(item);
        continue;
      }
      try {
        const e = item.event ?? decodeEvent(item.raw);
        predictions.push({
          key: e.key,
          ts: e.ts,
          seq: 0,
          model: 'passthrough',
          output: Array.from({ length: passthroughWidth }, (_, i) => e.features?.[i] ?? 0),
        });
      } catch (err) {
        if (!(err instanceof EventError)) throw err;
        rejected.push({
          kind: 'rejected',
          reason: err.message,
          code: err.code,
          raw: item.raw ?? '',
          position: item.position,
        });
      }
    }
    const keyOf = (r: Rejected) =>
      r.position.kind === 'offset' ? (batch.keys.get(r.position.offset) ?? null) : null;
    await sink.send(producer, { predictions, rejected, keyOf, originalOf: originalOf(batch) });
    stats.predictions += predictions.length;
    stats.rejected += rejected.length;
    stats.batches++;
    return undefined;
  };

  const commitIntervalMs = options.commitIntervalMs ?? KAFKA_COMMIT_DEFAULTS.commitIntervalMs;
  const maxCachedKeys = options.maxCachedKeys ?? KAFKA_COMMIT_DEFAULTS.maxCachedKeys;
  /**
   * Per input partition, what has been stepped and sent since its state was last made durable: the
   * staged records (in `staged`, grouped by partition) are the truth until then, the offset to
   * commit with them, the batches to report once durable, and in exactly-once mode the open
   * transaction their predictions went into.
   */
  const held = new Map<number, HeldPartition>();

  /** Forgets what `partition` holds (its events will be redelivered from the committed offset). */
  const dropHeld = async (partition: number, err?: unknown): Promise<unknown> => {
    const h = held.get(partition);
    held.delete(partition);
    staged.clear(partition);
    if (!h?.txn) return err;
    await h.txn.abort().catch(() => {});
    const mapped = err === undefined ? err : mapFenced(err, transactional.transactionalId(partition));
    if (mapped instanceof FencedError) await transactional.release([partition]);
    return mapped;
  };
  const dropAll = async () => {
    for (const p of [...held.keys()]) await dropHeld(p);
    staged.clear();
  };

  /** Counts the batches `h` held as done and tells `onBatch`, now that they are durable. */
  const finish = (h: HeldPartition) => {
    const now = performance.now();
    for (const b of h.batches) {
      stats.predictions += b.predictions;
      stats.rejected += b.rejected.length;
      stats.duplicates += b.duplicates;
      stats.batches++;
      const report: KafkaBatchReport = { ...b, seconds: (now - b.started) / 1000 };
      // A listener's failure must not make a durable batch look failed.
      try {
        options.onBatch?.(report);
      } catch {}
    }
  };

  /** At-least-once: the predictions of the latest batch, on their way while the next is stepped. */
  const sendAhead = new SendAhead<{ partition: number; h: HeldPartition }>();
  /**
   * Waits for the send in flight. If it failed, its partition's held batches lacked predictions:
   * they are dropped and redelivered from the committed offset — by failing the batch in hand when
   * it is of that partition, else by having the source resync that partition after it.
   */
  const settleSends = async (current: number | undefined): Promise<void> => {
    const failed = await sendAhead.settle();
    if (!failed) return;
    const { partition, h } = failed.owner;
    // Dropped meanwhile (a rebalance, another failure): redelivered already.
    if (held.get(partition) !== h) return;
    if (partition === current) throw failed.error;
    stale.add(partition);
    await dropHeld(partition);
    source.distrust(partition);
    retries?.report(new Error(kafkaErrorText(failed.error), { cause: failed.error }));
  };

  /**
   * At-least-once: every partition's held state to the changelog (each key once, its last record),
   * then LMDB, once their predictions are acknowledged; resolves with the offsets this covers, to
   * commit after it. `current`: the partition whose batch is in hand, if any.
   */
  const flushAll = async (current?: number): Promise<PartitionOffset[]> => {
    await settleSends(current);
    if (held.size === 0) return [];
    await changelog.write(staged.changes());
    staged.clear();
    const offsets: PartitionOffset[] = [];
    for (const [partition, h] of held) {
      offsets.push({ partition, offset: h.nextOffset });
      finish(h);
    }
    held.clear();
    return offsets;
  };

  /** Exactly-once: `partition`'s held state and its offset into its open transaction, committed; then LMDB. */
  const commitPartition = async (partition: number): Promise<PartitionOffset[]> => {
    const h = held.get(partition);
    if (!h) return [];
    const changes = staged.changes(partition);
    let checkpoints: Awaited<ReturnType<ChangelogStore['send']>>;
    try {
      const txn = h.txn ?? (await transactional.get(partition).transaction());
      h.txn = txn;
      checkpoints = await changelog.send(changes, txn);
      await retryConcurrentTransactions(() =>
        txn.sendOffsets({
          consumerGroupId: options.groupId,
          consumer: source.currentConsumer,
          topics: [{ topic: options.inputTopic, partitions: [{ partition, offset: h.nextOffset }] }],
        }),
      );
      await txn.commit();
    } catch (err) {
      throw await dropHeld(partition, err);
    }
    held.delete(partition);
    try {
      await changelog.applyLocally(changes, checkpoints);
    } finally {
      staged.clear(partition);
    }
    finish(h);
    return [{ partition, offset: h.nextOffset }];
  };

  // Held batches followed by no more (a partition gone quiet without a batch that caught up, e.g.
  // behind an input transaction still open) are committed when the interval has passed anyway.
  let idleTimer: NodeJS.Timeout | undefined;
  /** Set by `drain` and `stop`: no idle commit is scheduled after it. */
  let closed = false;
  const endIdleCommits = () => {
    closed = true;
    if (idleTimer) clearTimeout(idleTimer);
  };
  const flushWhenIdle = () => {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = undefined;
    if (held.size === 0 || closed) return;
    idleTimer = setTimeout(() => {
      idleTimer = undefined;
      // A flush the source skipped (out of the group, a rebalance pending) leaves the batches
      // held: they are tried again after another interval, not left until a batch that may not come.
      source.flushIdle().then(flushWhenIdle, flushWhenIdle);
    }, commitIntervalMs);
    idleTimer.unref();
  };

  const handleBatch = async (batch: PartitionBatch): Promise<readonly PartitionOffset[]> => {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = undefined;
    try {
      return await stepBatch(batch);
    } finally {
      // Whatever other partitions still hold keeps its idle commit: exactly-once commits only
      // this batch's partition, and a failure drops only its own.
      flushWhenIdle();
    }
  };

  const stepBatch = async (batch: PartitionBatch): Promise<readonly PartitionOffset[]> => {
    const started = performance.now();
    const partition = batch.partition;
    if (stale.has(partition)) {
      await dropHeld(partition);
      await restore([partition]);
      stale.delete(partition);
    }
    const envelopes: Envelope[] = [];
    const rejected: Rejected[] = [];
    for (const item of batch.items) {
      if ('kind' in item) rejected.push(item);
      else envelopes.push(item);
    }
    let h = held.get(partition);
    if (!h) {
      h = { since: started, nextOffset: batch.nextOffset, batches: [] };
      held.set(partition, h);
    }
    try {
      staged.group = partition;
      const stepStarted = performance.now();
      const outcomes = await stepper.process(envelopes);
      const stepSeconds = (performance.now() - stepStarted) / 1000;
      const predictions: Prediction[] = [];
      const fresh: Prediction[] = [];
      let duplicates = 0;
      for (const o of outcomes) {
        if (o.kind === 'prediction') {
          predictions.push(o.prediction);
          if (!o.redelivered) fresh.push(o.prediction);
        } else if (o.kind === 'rejected') rejected.push(o);
        else if (o.kind === 'duplicate') duplicates++;
      }
      const keyOf = (r: Rejected) =>
        r.position.kind === 'offset' ? (batch.keys.get(r.position.offset) ?? null) : null;
      if (!exactlyOnce) {
        // Predictions acknowledged before the state that follows them is durable (flushAll waits
        // for them): see above. The batch before's went while this one was stepped.
        await settleSends(partition);
        const out = { predictions, rejected, keyOf, originalOf: originalOf(batch) };
        sendAhead.start({ partition, h }, () => sink.send(producer, out));
      } else {
        h.txn ??= await transactional.get(partition).transaction();
        // A redelivered event's prediction was committed with its state: sending it again
        // would be a duplicate under read_committed.
        await sink.send(h.txn, { predictions: fresh, rejected, keyOf, originalOf: originalOf(batch) });
      }
      h.nextOffset = batch.nextOffset;
      h.batches.push({
        partition,
        events: batch.items.length,
        fresh,
        predictions: exactlyOnce ? fresh.length : predictions.length,
        rejected,
        duplicates,
        stepSeconds,
        started,
      });
      const due =
        batch.caughtUp ||
        performance.now() - h.since >= commitIntervalMs ||
        staged.stagedKeys() >= maxCachedKeys;
      if (!due) return [];
      // The state in the changelog, then in LMDB, before the offsets commit (docs/kafka.md).
      return exactlyOnce ? await commitPartition(partition) : await flushAll(partition);
    } catch (err) {
      stale.add(partition);
      throw await dropHeld(partition, err);
    }
  };

  /** On stop, before the consumer leaves: what every partition holds, made durable. */
  const flush = async (): Promise<readonly PartitionOffset[]> => {
    if (!exactlyOnce) return flushAll();
    const offsets: PartitionOffset[] = [];
    for (const p of [...held.keys()]) offsets.push(...(await commitPartition(p)));
    return offsets;
  };

  opened.push(() => source.stop());
  await source.start({
    assigned: async (ps) => {
      // A rebalance: the consumer goes back to the committed offsets of every partition it owns,
      // so what was held since is redelivered, and dropped here (its transactions aborted).
      await dropAll();
      // The standby stops writing these partitions before the restore reads their checkpoints and
      // long before the first step: no follower write can land over the owner's newer state.
      await follower?.unfollow(ps);
      // Fence the previous owners first, so the changelog's end is final when the restore reads it.
      if (exactlyOnce) await transactional.acquire(ps);
      await restore(ps, assignments++ > 0 ? options.slowRestoreMs : 0);
      for (const p of ps) stale.delete(p);
      const owned = new Set(ps);
      follower?.follow(allPartitions.filter((p) => !owned.has(p)));
    },
    revoked: async (ps) => {
      for (const p of ps) await dropHeld(p);
      if (exactlyOnce) await transactional.release(ps);
      // Followed again from this instance's checkpoint: the last state it wrote as the owner.
      follower?.follow(ps);
    },
    batch: options.passthrough ? passthrough : handleBatch,
    ...(options.passthrough ? {} : { flush }),
    resync,
  });

  let stopping: Promise<void> | undefined;
  return {
    stats,
    store: changelog,
    modelLabel: stepper.modelLabel,
    joined: () => source.joined,
    partitions: () => source.partitions,
    standbyPartitions: () => follower?.partitions ?? [],
    health,
    groupId: options.groupId,
    lost,
    drain() {
      endIdleCommits();
      return source.drain();
    },
    stop() {
      stopping ??= (async () => {
        endIdleCommits();
        health.close();
        await source.stop();
        await follower?.stop();
        await standbyReader?.stop();
        await offsetsAdmin.disconnect().catch(() => {});
        await transactional.releaseAll();
        // A send the stop's flush did not wait for (it was skipped: a rebalance pending) ends first.
        await sendAhead.settle();
        await producer.disconnect();
        await reader.stop();
        await staged.close();
      })();
      return stopping;
    },
  };
}

/** A batch stepped and sent, waiting for its state to be durable before it is reported. */
interface HeldBatch extends Omit<KafkaBatchReport, 'seconds'> {
  /** When it reached the pipeline (`performance.now()`). */
  readonly started: number;
}

interface HeldPartition {
  /** When its first held batch reached the pipeline. */
  readonly since: number;
  /** The offset to commit once its state is durable: one past its last held batch. */
  nextOffset: string;
  readonly batches: HeldBatch[];
  /** Exactly-once: the transaction its held predictions and dead letters went into. */
  txn?: KafkaTransaction;
}
