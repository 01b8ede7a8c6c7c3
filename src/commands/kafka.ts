import type { Writable } from 'node:stream';
import { parseMaxTsAhead } from '../events/limits.js';
import { parseBrokers } from '../kafka/client.js';
import type { Model } from '../model/types.js';
import {
  type KafkaPipeline,
  type KafkaPipelineOptions,
  startKafkaPipeline,
} from '../pipelines/kafkaPipeline.js';
import { shutdownSignal } from './shutdownSignals.js';

/** The Kafka settings of `cellstream kafka` (and of `serve`'s `kafka` config section). */
export interface KafkaCommandOptions {
  /** `host:port`, as a list or comma-separated. */
  readonly brokers: string | readonly string[];
  readonly inputTopic: string;
  readonly outputTopic: string;
  readonly deadLetterTopic?: string | undefined;
  readonly changelogTopic?: string | undefined;
  readonly groupId: string;
  readonly stateDir: string;
  readonly exactlyOnce?: boolean | undefined;
  readonly appId?: string | undefined;
  readonly inputPartitions?: number | undefined;
  readonly maxBatch?: number | undefined;
  readonly maxWaitTimeInMs?: number | undefined;
  readonly sessionTimeout?: number | undefined;
  readonly heartbeatInterval?: number | undefined;
  /** Longest key in UTF-8 bytes; default 512. */
  readonly maxKeyBytes?: number | undefined;
  /** Longest id in UTF-8 bytes; default 128. */
  readonly maxIdBytes?: number | undefined;
  /** How far `ts` may lie ahead of the clock: a duration or `off`; default `1d`. */
  readonly maxTsAhead?: string | undefined;
  /** Ids remembered per key; default 8. */
  readonly idWindow?: number | undefined;
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
    ...(o.appId === undefined ? {} : { appId: o.appId }),
    ...(o.inputPartitions === undefined ? {} : { inputPartitions: o.inputPartitions }),
    ...(o.maxBatch === undefined ? {} : { maxBatch: o.maxBatch }),
    ...(o.maxWaitTimeInMs === undefined ? {} : { maxWaitTimeInMs: o.maxWaitTimeInMs }),
    ...(o.sessionTimeout === undefined ? {} : { sessionTimeout: o.sessionTimeout }),
    ...(o.heartbeatInterval === undefined ? {} : { heartbeatInterval: o.heartbeatInterval }),
    limits: {
      ...(o.maxKeyBytes === undefined ? {} : { maxKeyBytes: o.maxKeyBytes }),
      ...(o.maxIdBytes === undefined ? {} : { maxIdBytes: o.maxIdBytes }),
      // On by default for a live stream: one event far in the future would lock its key.
      maxTsAheadMs: parseMaxTsAhead(o.maxTsAhead ?? '1d', '--max-ts-ahead'),
    },
    ...(o.idWindow === undefined ? {} : { idWindow: o.idWindow }),
  };
}

/**
 * Runs the Kafka pipeline until SIGTERM or SIGINT, then shuts it down gracefully. Writes one JSON
 * line per lifecycle step (started, restored, stopped) to `log`.
 */
export async function runKafka(model: Model, options: KafkaCommandOptions, log: Writable): Promise<void> {
  const say = (event: string, detail: object = {}) => log.write(`${JSON.stringify({ event, ...detail })}\n`);
  const pipelineOptions = kafkaPipelineOptions(model, options);
  // Caught since the bin started (a signal during start-up stops the pipeline once started).
  const stopped = shutdownSignal();
  const pipeline: KafkaPipeline = await startKafkaPipeline({
    ...pipelineOptions,
    onRestore: (reports, ms) =>
      say('restored', { ms: Math.round(ms), records: reports.reduce((n, r) => n + r.records, 0), reports }),
  });
  say('started', {
    groupId: options.groupId,
    inputTopic: options.inputTopic,
    exactlyOnce: pipelineOptions.exactlyOnce,
  });
  await stopped;
  say('stopping');
  await pipeline.stop();
  say('stopped', { ...pipeline.stats });
}
