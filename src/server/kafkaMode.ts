import { kafkaPipelineOptions } from '../commands/kafka.js';
import { eventLimitsOf } from '../config/eventLimits.js';
import type { Config, KafkaConfig } from '../config/schema.js';
import type { KafkaLogLevel } from '../kafka/adapter.js';
import { createKafka } from '../kafka/client.js';
import type { Model } from '../model/types.js';
import type { KafkaHealthObserver } from '../pipelines/kafkaHealth.js';
import type { KafkaBatchReport } from '../pipelines/kafkaPipeline.js';
import { type KafkaInstance, startKafkaInstance } from '../pipelines/kafkaWorkers.js';
import { KafkaForwarder } from '../sinks/kafkaForwarder.js';
import type { RestoreReport, UnreadableChangelogRecord } from '../state/changelogStore.js';
import type { StateStore } from '../state/types.js';
import type { IngestTarget } from './ingestTarget.js';

export interface KafkaModeHooks {
  /** A batch's results are durable in Kafka (see `KafkaPipelineOptions.onBatch`). */
  onBatch(report: KafkaBatchReport): void;
  onRestore?(reports: readonly RestoreReport[], ms: number): void;
  /** Following a changelog partition as a standby failed (it is tried again). */
  onStandbyError?(partition: number, error: Error): void;
  /** Changelog records a standby could not apply as states. */
  onStandbyUnreadable?(records: readonly UnreadableChangelogRecord[]): void;
  /** An event was forwarded into the input topic and acknowledged. */
  onForwarded?(): void;
  /** Counts rebalances, crashes, rejoins, restores (the Kafka metrics' observer). */
  healthObserver?: KafkaHealthObserver;
  /** A stall began (message says why and what to do) or ended (undefined). */
  onStall?(message: string | undefined): void;
  /** A new consumer joins after a crash kafkajs does not recover from. */
  onRejoin?(attempt: number, error: Error): void;
  /** A fetch or batch failed and the client retries it in place (throttled; see `onConsumerRetry`). */
  onConsumerRetry?(error: Error, repeats: number): void;
  /** A worker thread ended on an uncaught error (`kafka.workers` above 1); the instance is lost. */
  onWorkerCrash?(error: Error): void;
}

/** `serve`'s Kafka side: the pipeline that steps every key, and the forwarder `/ingest` feeds. */
export interface KafkaMode {
  /** The pipeline: one on this thread, or `kafka.workers` group members on worker threads. */
  readonly pipeline: KafkaInstance;
  /** Where `/ingest` and the demo feed send events: into the input topic. */
  readonly target: IngestTarget;
  /** State look-ups, answering only for keys of partitions this instance owns (others may be stale here). */
  readonly lookup: Pick<StateStore, 'getMany'>;
  /** Undefined when the consumer is a member of its group, else why not. */
  notReadyReason(): string | undefined;
  /** Forwards no more events; resolves once each one already taken is acknowledged or refused. */
  closeIngest(): Promise<void>;
  /** Stops fetching, finishes the batch in flight, commits, leaves the group, closes the state. */
  stop(): Promise<void>;
}

/**
 * Starts the Kafka pipeline (joining the consumer group before it resolves) and a forwarder to its
 * input topic. State lives in LMDB at `state.path`, backed by the changelog topic.
 */
export async function startKafkaMode(
  config: Config & { kafka: KafkaConfig },
  model: Model,
  hooks: KafkaModeHooks,
): Promise<KafkaMode> {
  const k = config.kafka;
  const kafkaLogLevel = toKafkaLogLevel(config.log.level);
  const pipeline = await startKafkaInstance({
    ...kafkaPipelineOptions(model, { ...k, stateDir: config.state.path }),
    workers: k.workers,
    ...(hooks.onWorkerCrash ? { onWorkerCrash: hooks.onWorkerCrash } : {}),
    onModelMismatch: config.model.onMismatch,
    limits: eventLimitsOf(config.events),
    idWindow: config.state.idWindow,
    ...(config.model.label === undefined ? {} : { modelLabel: config.model.label }),
    clientId: `cellstream-serve-${k.groupId}`,
    logLevel: kafkaLogLevel,
    onBatch: (report) => hooks.onBatch(report),
    ...(hooks.onRestore ? { onRestore: hooks.onRestore } : {}),
    ...(hooks.healthObserver ? { healthObserver: hooks.healthObserver } : {}),
    ...(hooks.onStall
      ? { onStall: (m: string) => hooks.onStall?.(m), onStallEnd: () => hooks.onStall?.(undefined) }
      : {}),
    ...(hooks.onRejoin ? { onRejoin: hooks.onRejoin } : {}),
    ...(hooks.onConsumerRetry ? { onConsumerRetry: hooks.onConsumerRetry } : {}),
    ...(hooks.onStandbyError ? { onStandbyError: hooks.onStandbyError } : {}),
    ...(hooks.onStandbyUnreadable ? { onStandbyUnreadable: hooks.onStandbyUnreadable } : {}),
  });
  let forwarder: KafkaForwarder;
  try {
    forwarder = await KafkaForwarder.open(
      await createKafka({
        brokers: k.brokers,
        clientId: `cellstream-ingest-${k.groupId}`,
        client: k.client,
        logLevel: kafkaLogLevel,
      }),
      { topic: k.inputTopic },
    );
  } catch (err) {
    await pipeline.stop();
    throw err;
  }

  const target: IngestTarget = {
    submit(event, done) {
      forwarder.forward(event).then(
        (ack) => {
          hooks.onForwarded?.();
          done({ kind: 'accepted', ...ack });
        },
        (error) => done({ kind: 'unavailable', error }),
      );
    },
  };

  const lookup: Pick<StateStore, 'getMany'> = { getMany: (keys) => pipeline.lookup(keys) };

  return {
    pipeline,
    target,
    lookup,
    notReadyReason: () => pipeline.health.notReadyReason(k.groupId),
    closeIngest: () => forwarder.close(),
    stop: async () => {
      await forwarder.close();
      await pipeline.stop();
    },
  };
}

function toKafkaLogLevel(level: Config['log']['level']): KafkaLogLevel {
  if (level === 'silent') return 'nothing';
  if (level === 'fatal' || level === 'error') return 'error';
  return 'warn';
}
