// A send that the broker applied to some of its partitions and refused for another, against a real
// broker, on each client: the producer must go on sending. The client counts a partition's sequence
// numbers on only after an acknowledged send, so it sent the next batch of the partition that had
// been appended with a sequence the broker had already seen, and the broker refused every later
// send there (OUT_OF_ORDER_SEQUENCE_NUMBER) for as long as the producer lived: one oversized dead
// letter stopped all output for good. The same happens when a broker restart cuts a request off.
import { randomUUID } from 'node:crypto';
import { describe, it } from 'vitest';
import { KAFKA_CLIENTS, type KafkaClientName } from '../../src/kafka/adapter.js';
import { createKafka } from '../../src/kafka/client.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import { brokers, readTopic, requireBroker } from '../helpers/kafka.js';

describe('an idempotent producer after a send refused for one of its partitions', () => {
  it.for(KAFKA_CLIENTS)(
    '%s: later sends to the partitions it did append go through, nothing lost',
    { timeout: 120_000 },
    async (client: KafkaClientName, { expect }) => {
      await requireBroker();
      const id = randomUUID().slice(0, 8);
      const open = `renewal-open-${id}`;
      const small = `renewal-small-${id}`;
      const kafka = await createKafka({ brokers, clientId: `renewal-${id}`, client, logLevel: 'nothing' });
      const admin = kafka.admin();
      await admin.connect();
      try {
        await admin.createTopics([
          { topic: open, numPartitions: 1, replicationFactor: 1, configEntries: [] },
          // Refuses any batch over 2 KB (MESSAGE_TOO_LARGE), whatever the rest of the request.
          {
            topic: small,
            numPartitions: 1,
            replicationFactor: 1,
            configEntries: [{ name: 'max.message.bytes', value: '2048' }],
          },
        ]);
        await ensureTopics(admin, [
          { topic: open, partitions: 1, replicationFactor: 1 },
          { topic: small, partitions: 1, replicationFactor: 1 },
        ]);
      } finally {
        await admin.disconnect();
      }
      const producer = kafka.producer();
      await producer.connect();
      const send = (topic: string, values: string[]) => ({
        topicMessages: [{ topic, messages: values.map((value) => ({ key: 'k', value })) }],
      });
      try {
        await producer.sendBatch(send(open, ['a1']));
        // One request: two records for `open` (appended) and one too large for `small` (refused).
        const mixed = {
          topicMessages: [
            ...send(open, ['b1', 'b2']).topicMessages,
            ...send(small, ['x'.repeat(8192)]).topicMessages,
          ],
        };
        await expect(producer.sendBatch(mixed)).rejects.toThrow();
        // A batch of another size than the refused request's: the broker checks its sequence.
        await producer.sendBatch(send(open, ['c1', 'c2', 'c3']));
        await producer.sendBatch(send(open, ['d1']));
      } finally {
        await producer.disconnect();
      }
      const values = (await readTopic(open)).map((m) => m.value);
      // b1 and b2 were appended by the refused request (at-least-once: the caller sends them again).
      expect(values).toEqual(['a1', 'b1', 'b2', 'c1', 'c2', 'c3', 'd1']);
    },
  );
});
