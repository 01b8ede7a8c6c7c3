/**
 * Defaults of the Kafka pipeline's record cache between commits (see
 * `KafkaPipelineOptions.commitIntervalMs`); on their own so configuration can name them without
 * loading the pipeline.
 */
export const KAFKA_COMMIT_DEFAULTS = { commitIntervalMs: 1000, maxCachedKeys: 20_000 } as const;

/** Bounds and default of `kafka.workers` / `--workers`: group members per process (see `startKafkaInstance`). */
export const KAFKA_WORKERS = { min: 1, max: 64, default: 1 } as const;
