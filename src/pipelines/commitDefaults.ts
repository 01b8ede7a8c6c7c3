/**
 * Defaults of the Kafka pipeline's record cache between commits (see
 * `KafkaPipelineOptions.commitIntervalMs`); on their own so configuration can name them without
 * loading the pipeline.
 */
export const KAFKA_COMMIT_DEFAULTS = { commitIntervalMs: 1000, maxCachedKeys: 20_000 } as const;
