// Smoke test: a real Apache Kafka broker is up and kafkajs can use it (topic with 3 partitions,
// keyed produce, consume back through a consumer group). It fails, never skips, without a
// broker: run it through scripts/kafka/with-kafka.sh or `npm test`, which start one.
import { randomUUID } from 'node:crypto';
import { type Admin, type Consumer, Kafka, logLevel, Partitioners, type Producer } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { brokers, requireBroker, waitUntil } from '../helpers/kafka.js';

interface Received {
  key: string;
  value: string;
  partition: number;
  offset: bigint;
}

describe('real Kafka broker', () => {
  const kafka = new Kafka({ clientId: 'cellstream-smoke', brokers, logLevel: logLevel.ERROR });
  const topic = `cellstream-smoke-${randomUUID()}`;
  let admin: Admin | undefined;
  let producer: Producer | undefined;
  let consumer: Consumer | undefined;

  afterAll(async () => {
    await consumer?.disconnect();
    await producer?.disconnect();
    if (admin) {
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
    }
  });

  it('round-trips keyed messages through a 3-partition topic and a consumer group', async () => {
    // In the test itself, so a missing broker is a failed test rather than a skipped one.
    await requireBroker();
    admin = kafka.admin();
    await admin.connect();

    const created = await admin.createTopics({
      topics: [{ topic, numPartitions: 3, replicationFactor: 1 }],
      waitForLeaders: true,
    });
    expect(created).toBe(true);
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    const partitionMetadata = metadata.topics[0].partitions;
    expect(partitionMetadata).toHaveLength(3);

    // Ten messages over four keys; value i is the send order.
    const sent = Array.from({ length: 10 }, (_, i) => ({
      key: `entity-${i % 4}`,
      value: JSON.stringify({ i }),
    }));
    producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: sent });

    // Where the (Java-compatible murmur2) default partitioner puts each key.
    const partitionOf = Partitioners.DefaultPartitioner();
    const expectedPartition = (key: string) =>
      partitionOf({ topic, partitionMetadata, message: { key, value: null } });

    const received: Received[] = [];
    consumer = kafka.consumer({ groupId: `cellstream-smoke-${randomUUID()}`, maxWaitTimeInMs: 500 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        received.push({
          key: message.key?.toString() ?? '',
          value: message.value?.toString() ?? '',
          partition,
          offset: BigInt(message.offset),
        });
      },
    });
    await waitUntil(() => received.length >= sent.length, `${sent.length} messages`, 30_000);

    // Exactly the messages sent, each on its key's partition.
    expect(received).toHaveLength(sent.length);
    const byValue = (a: { value: string }, b: { value: string }) => a.value.localeCompare(b.value);
    expect(received.map(({ key, value }) => ({ key, value })).sort(byValue)).toEqual([...sent].sort(byValue));
    for (const r of received) expect(r.partition).toBe(expectedPartition(r.key));
    expect(new Set(received.map((r) => r.partition)).size).toBeGreaterThan(1);

    // Within a partition: offsets increase and messages arrive in send order.
    for (let p = 0; p < 3; p++) {
      const inPartition = received.filter((r) => r.partition === p);
      const order = inPartition.map((r) => (JSON.parse(r.value) as { i: number }).i);
      expect(order).toEqual([...order].sort((a, b) => a - b));
      const offsets = inPartition.map((r) => r.offset);
      expect(offsets).toEqual(offsets.map((_, k) => offsets[0] + BigInt(k)));
    }
  });
});
