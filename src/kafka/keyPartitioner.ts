import { Partitioners } from 'kafkajs';

/**
 * The partition Kafka's default (murmur2) partitioner gives a key in a topic of `partitions`
 * partitions — the same one a keyed producer picks — computed locally, without metadata from the
 * broker, so writes can be grouped by partition before they are sent.
 */
export function keyPartitioner(topic: string, partitions: number): (key: string) => number {
  const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({
    partitionId: i,
    leader: 0,
    replicas: [0],
    isr: [0],
    offlineReplicas: [],
    partitionErrorCode: 0,
  }));
  const murmur2 = Partitioners.DefaultPartitioner();
  return (key) => murmur2({ topic, partitionMetadata, message: { key, value: null } });
}
