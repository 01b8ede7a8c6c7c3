import { ConfigError } from '../errors.js';
import type { KafkaAdmin } from './adapter.js';
import { protocolErrorType } from './kafkaErrors.js';

export interface TopicSpec {
  readonly topic: string;
  /** Partitions to create the topic with; an existing topic is checked against `mustMatch` only. */
  readonly partitions: number;
  /** A compacted topic (`cleanup.policy=compact`), as a state changelog must be. */
  readonly compacted?: boolean;
  /** Refuse to start unless an existing topic has exactly `partitions` partitions. */
  readonly mustMatch?: boolean;
  readonly replicationFactor?: number;
  /** Topic configs to create it with (besides `compacted`'s), e.g. `max.message.bytes`. */
  readonly configEntries?: ReadonlyArray<{ readonly name: string; readonly value: string }>;
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
    // Another instance may create one first, or the broker may not know the new topic yet: the
    // adapter does not count either as an error, and the wait below outlasts the second.
    await admin.createTopics(
      missing.map((s) => ({
        topic: s.topic,
        numPartitions: s.partitions,
        replicationFactor: s.replicationFactor ?? -1,
        configEntries: [
          ...(s.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : []),
          ...(s.configEntries ?? []),
        ],
      })),
    );
  }
  const leaders = await topicLeaders(
    admin,
    specs.map((s) => s.topic),
    missing.length > 0,
  );
  const counts = new Map([...leaders].map(([name, partitions]) => [name, partitions.length]));
  for (const s of specs) {
    if (s.mustMatch && counts.get(s.topic) !== s.partitions) {
      throw new ConfigError(
        `topic '${s.topic}' has ${counts.get(s.topic)} partitions, it must have ${s.partitions} (as many as the input topic)`,
      );
    }
  }
  return counts;
}

/** How long a topic just created may be unknown to the broker answering its metadata. */
const NEW_TOPIC_METADATA_MS = 30_000;

/**
 * The topics' metadata, once every partition has a leader. A broker can answer
 * `UNKNOWN_TOPIC_OR_PARTITION` for a topic created a moment ago (by this call, or by another
 * instance starting at the same time) until its metadata has caught up, seen under load on a
 * fresh broker; after a create that answer, and partitions without a leader yet, are waited out,
 * bounded, instead of failing the start.
 */
async function topicLeaders(admin: KafkaAdmin, topics: string[], justCreated: boolean) {
  const deadline = Date.now() + NEW_TOPIC_METADATA_MS;
  for (;;) {
    try {
      const leaders = await admin.topicLeaders(topics);
      const incomplete =
        topics.some((t) => (leaders.get(t)?.length ?? 0) === 0) ||
        [...leaders.values()].some((ps) => ps.some((leader) => leader < 0));
      if (!justCreated || !incomplete || Date.now() > deadline) return leaders;
    } catch (err) {
      const unknown = protocolErrorType(err) === 'UNKNOWN_TOPIC_OR_PARTITION';
      if (!justCreated || !unknown || Date.now() > deadline) throw err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
