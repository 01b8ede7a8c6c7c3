import { ConfigError } from '../errors.js';
import type { KafkaAdmin } from './adapter.js';

export interface TopicSpec {
  readonly topic: string;
  /** Partitions to create the topic with; an existing topic is checked against `mustMatch` only. */
  readonly partitions: number;
  /** A compacted topic (`cleanup.policy=compact`), as a state changelog must be. */
  readonly compacted?: boolean;
  /** Refuse to start unless an existing topic has exactly `partitions` partitions. */
  readonly mustMatch?: boolean;
  readonly replicationFactor?: number;
}

/**
 * Creates the topics that do not exist yet (waiting for their leaders, as a client needs) and
 * returns every topic's partition count. A changelog partitioned unlike its input would send a
 * key's state to another instance than its events, so `mustMatch` mismatches are a `ConfigError`.
 */
export async function ensureTopics(
  admin: KafkaAdmin,
  specs: readonly TopicSpec[],
): Promise<Map<string, number>> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !existing.has(s.topic));
  if (missing.length > 0) {
    // Another instance may create one first: the adapter does not count that as an error.
    await admin.createTopics(
      missing.map((s) => ({
        topic: s.topic,
        numPartitions: s.partitions,
        replicationFactor: s.replicationFactor ?? -1,
        configEntries: s.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
      })),
    );
  }
  const counts = await admin.partitionCounts(specs.map((s) => s.topic));
  for (const s of specs) {
    if (s.mustMatch && counts.get(s.topic) !== s.partitions) {
      throw new ConfigError(
        `topic '${s.topic}' has ${counts.get(s.topic)} partitions, it must have ${s.partitions} (as many as the input topic)`,
      );
    }
  }
  return counts;
}
