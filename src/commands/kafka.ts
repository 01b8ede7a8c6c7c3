import type { Writable } from 'node:stream';
import { parseMaxTsAhead } from '../events/limits.js';
import type { KafkaClientName } from '../kafka/adapter.js';
import { parseBrokers } from '../kafka/client.js';
import type { Model } from '../model/types.js';
import type { KafkaPipelineOptions } from '../pipelines/kafkaPipeline.js';
import { type KafkaInstance, startKafkaInstance } from '../pipelines/kafkaWorkers.js';
import type { RecordFormatOptions } from '../records/formats.js';
import { HEALTH_SERVER_DEFAULTS, HealthServer } from '../server/healthServer.js';
import type { ConsumerCrashPolicy } from '../sources/kafkaSource.js';
import { unreadableMessage } from '../state/changelogStore.js';
import { shutdownSignal } from './shutdownSignals.js';

/** The Kafka settings of `cellstream kafka` (and of `serve`'s `kafka` config section). */
export interface KafkaCommandOptions extends RecordFormatOptions {
  /** `host:port`, as a list or comma-separated. */
  readonly brokers: string | readonly string[];
  readonly inputTopic: string;
  readonly outputTopic: string;
  readonly deadLetterTopic?: string | undefined;
  readonly changelogTopic?: string | undefined;
  readonly groupId: string;
  readonly stateDir: string;
  readonly exactlyOnce?: boolean | undefined;
  /** Which Kafka client library; default `kafkajs`. */
  readonly client?: KafkaClientName | undefined;
  /** 1: follow the changelog of every partition not owned (standby state); default 0. */
  readonly standbys?: number | undefined;
  readonly appId?: string | undefined;
  readonly inputPartitions?: number | undefined;
  readonly maxBatch?: number | undefined;
  readonly commitIntervalMs?: number | undefined;
  readonly maxCachedKeys?: number | undefined;
  readonly maxWaitTimeInMs?: number | undefined;
  readonly sessionTimeout?: number | undefined;
  readonly heartbeatInterval?: number | undefined;
  readonly onConsumerCrash?: ConsumerCrashPolicy | undefined;
  readonly maxRejoins?: number | undefined;
  readonly stallTimeoutMs?: number | undefined;
  /** Longest key in UTF-8 bytes; default 512. */
  readonly maxKeyBytes?: number | undefined;
  /** Longest id in UTF-8 bytes; default 128. */
  readonly maxIdBytes?: number | undefined;
  /** How far `ts` may lie ahead of the clock: a duration or `off`; default `1d`. */
  readonly maxTsAhead?: string | undefined;
  /** Ids remembered per key; default 8. */
  readonly idWindow?: number | undefined;
  /** Consumer group members in this process, each on a worker thread when above 1; default 1. */
  readonly workers?: number | undefined;
}

/** Pipeline options from command settings; the dead-letter topic defaults to `${inputTopic}-dead-letter`. */
export function kafkaPipelineOptions(model: Model, o: KafkaCommandOptions): KafkaPipelineOptions {
  return {
    model,
    brokers: parseBrokers(o.brokers),
    inputTopic: o.inputTopic,
    outputTopic: o.outputTopic,
    deadLetterTopic: o.deadLetterTopic ?? `${o.inputTopic}-dead-letter`,
    ...(o.changelogTopic === undefined ? {} : { changelogTopic: o.changelogTopic }),
    groupId: o.groupId,
    stateDir: o.stateDir,
    exactlyOnce: o.exactlyOnce ?? false,
    ...(o.client === undefined ? {} : { client: o.client }),
    ...(o.standbys === undefined ? {} : { standbys: o.standbys }),
    ...(o.appId === undefined ? {} : { appId: o.appId }),
    ...(o.inputPartitions === undefined ? {} : { inputPartitions: o.inputPartitions }),
    ...(o.maxBatch === undefined ? {} : { maxBatch: o.maxBatch }),
    ...(o.commitIntervalMs === undefined ? {} : { commitIntervalMs: o.commitIntervalMs }),
    ...(o.maxCachedKeys === undefined ? {} : { maxCachedKeys: o.maxCachedKeys }),
    ...(o.maxWaitTimeInMs === undefined ? {} : { maxWaitTimeInMs: o.maxWaitTimeInMs }),
    ...(o.sessionTimeout === undefined ? {} : { sessionTimeout: o.sessionTimeout }),
    ...(o.heartbeatInterval === undefined ? {} : { heartbeatInterval: o.heartbeatInterval }),
    ...(o.onConsumerCrash === undefined ? {} : { onConsumerCrash: o.onConsumerCrash }),
    ...(o.maxRejoins === undefined ? {} : { maxRejoins: o.maxRejoins }),
    ...(o.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: o.stallTimeoutMs }),
    limits: {
      ...(o.maxKeyBytes === undefined ? {} : { maxKeyBytes: o.maxKeyBytes }),
      ...(o.maxIdBytes === undefined ? {} : { maxIdBytes: o.maxIdBytes }),
      // On by default for a live stream: one event far in the future would lock its key.
      maxTsAheadMs: parseMaxTsAhead(o.maxTsAhead ?? '1d', '--max-ts-ahead'),
    },
    ...(o.idWindow === undefined ? {} : { idWindow: o.idWindow }),
    ...(o.input === undefined ? {} : { input: o.input }),
    ...(o.output === undefined ? {} : { output: o.output }),
    ...(o.registry === undefined ? {} : { registry: o.registry }),
  };
}

/** Where `cellstream kafka` serves `/healthz`, `/readyz` and `/metrics`. */
export interface HealthListen {
  readonly host?: string | undefined;
  /** 0 for any free port. */
  readonly port?: number | undefined;
}

/**
 * Runs the Kafka pipeline until SIGTERM or SIGINT, then shuts it down gracefully, with its health
 * endpoints on `http`. Writes one JSON line per lifecycle step (started, restored, stalled,
 * rejoining, stopped) to `log`. Rejects with `KafkaConsumerLostError` when the consumer is lost for
 * good (so the process exits non-zero and its supervisor restarts it).
 */
export async function runKafka(
  model: Model,
  options: KafkaCommandOptions,
  log: Writable,
  http: HealthListen = {},
): Promise<void> {
  // Before anything slow: a signal during start-up asks for a clean stop instead of killing.
  const signal = shutdownSignal();
  let signalled = false;
  void signal.then(() => {
    signalled = true;
  });
  const say = (event: string, detail: object = {}) => log.write(`${JSON.stringify({ event, ...detail })}\n`);
  const pipelineOptions = kafkaPipelineOptions(model, options);
  const health = await HealthServer.listen({
    host: http.host ?? HEALTH_SERVER_DEFAULTS.host,
    port: http.port ?? HEALTH_SERVER_DEFAULTS.port,
    groupId: options.groupId,
  });
  say('http', { url: health.url });
  let pipeline: KafkaInstance | undefined;
  try {
    if (signalled) {
      say('stopped', { beforeStart: true });
      return;
    }
    pipeline = await startKafkaInstance({
      ...pipelineOptions,
      ...(options.workers === undefined ? {} : { workers: options.workers }),
      onWorkerCrash: (error) =>
        say('worker-crashed', { level: 'error', code: error.code, message: error.message }),
      healthObserver: health.kafkaMetrics.observer,
      // Fault injection for the fault tests only (docs/kafka.md, Operations).
      slowRestoreMs: Number(process.env.CELLSTREAM_FAULT_SLOW_RESTORE_MS ?? 0) || 0,
      onBatch: (report) => health.batch(report),
      onRestore: (reports, ms) => {
        for (const r of reports) {
          for (const bad of r.unreadable) {
            say('changelog-record-unreadable', { level: 'warn', ...bad, message: unreadableMessage(bad) });
          }
        }
        say('restored', {
          ms: Math.round(ms),
          records: reports.reduce((n, r) => n + r.records, 0),
          reports: reports.map(({ unreadable, ...r }) => ({ ...r, unreadable: unreadable.length })),
        });
      },
      onStandbyError: (partition, error) =>
        say('standby-error', {
          level: 'warn',
          partition,
          error: error.message,
          message: `following changelog partition ${partition} as a standby failed; trying again in a second`,
        }),
      onStandbyUnreadable: (records) => {
        for (const bad of records) {
          say('changelog-record-unreadable', { level: 'warn', ...bad, message: unreadableMessage(bad) });
        }
      },
      onStall: (message) => say('stalled', { level: 'error', message }),
      onStallEnd: () => say('resumed'),
      onConsumerRetry: (error, repeats) =>
        say('consumer-retry', {
          level: 'warn',
          repeats,
          error: error.message,
          message: 'a fetch or batch failed; the consumer retries it after a backoff',
        }),
      onRejoin: (attempt, error) =>
        say('rejoining', {
          level: 'warn',
          attempt,
          error: error.message,
          message: 'the consumer crashed; a new one joins the group',
        }),
      onLost: (error) => say('lost', { level: 'error', code: error.code, message: error.message }),
    });
    const running = pipeline;
    health.kafkaMetrics.attach(running.health);
    health.attach({
      notReadyReason: () => running.health.notReadyReason(options.groupId),
      snapshot: () => running.health.snapshot(options.groupId),
    });
    say('started', {
      groupId: options.groupId,
      inputTopic: options.inputTopic,
      exactlyOnce: pipelineOptions.exactlyOnce,
      workers: running.workers,
      http: health.url,
    });
    // Until a signal, or the consumer is lost for good (then the rejection ends the command).
    await Promise.race([signal, running.lost]);
    say('stopping');
    health.shuttingDown();
    await running.stop();
    say('stopped', { ...running.stats });
  } catch (err) {
    await pipeline?.stop().catch(() => {});
    throw err;
  } finally {
    await health.close();
  }
}
