// The adapter's consumer against a real broker, on each client library whatever
// CELLSTREAM_TEST_KAFKA_CLIENT says: `batchEnd` tells only batches that never reached eachBatch
// (control or aborted records alone). The changelog reader finishes a restore on those ends; when
// kafkajs also told the end of a batch eachBatch had passed over (fetched before the read's seek), a
// restore under load finished with nothing applied and its keys started from zero.
import { randomUUID } from 'node:crypto';
import { describe, it } from 'vitest';
import { KAFKA_CLIENTS, type KafkaClientName } from '../../src/kafka/adapter.js';
import { createKafka } from '../../src/kafka/client.js';
import { brokers, createTopic, requireBroker, waitUntil } from '../helpers/kafka.js';

const instance = (client: KafkaClientName) =>
  createKafka({ brokers, clientId: `batches-${randomUUID().slice(0, 8)}`, client, logLevel: 'nothing' });

describe('Kafka consumer: the ends of batches it tells', () => {
  it.for(KAFKA_CLIENTS)(
    '%s: batchEnd for a batch of an aborted transaction alone, never for one eachBatch was called with',
    { timeout: 120_000 },
    async (client, { expect }) => {
      await requireBroker();
      const topic = `batch-ends-${randomUUID().slice(0, 8)}`;
      await createTopic(topic, 1);
      const kafka = await instance(client);
      const producer = kafka.transactionalProducer(`${topic}-txn`);
      await producer.connect();
      const consumer = kafka.consumer({ groupId: `${topic}-group`, maxWaitTimeInMs: 100 });
      const seen: Array<{ first: bigint; next: bigint }> = [];
      const ends: bigint[] = [];
      consumer.listen({ batchEnd: (t, _p, next) => t === topic && ends.push(next) });
      const send = async (values: readonly string[], outcome: 'commit' | 'abort') => {
        const txn = await producer.transaction();
        await txn.sendBatch({
          topicMessages: [{ topic, messages: values.map((value) => ({ key: 'k', value })) }],
        });
        await txn[outcome]();
      };
      try {
        await consumer.connect();
        await consumer.subscribe({ topic, fromBeginning: true });
        await consumer.run({
          autoResolve: true,
          eachBatch: async ({ batch }) => {
            seen.push({ first: BigInt(batch.messages[0]!.offset), next: BigInt(batch.lastOffset()) + 1n });
          },
        });
        // Offsets 0–2 and the commit marker at 3: a batch of messages.
        await send(['a', 'b', 'c'], 'commit');
        await waitUntil(async () => seen.some((b) => b.next >= 4n), 'the committed records');
        // Offsets 4–6, aborted, and the abort marker at 7: nothing for eachBatch.
        await send(['x', 'y', 'z'], 'abort');
        await waitUntil(async () => ends.includes(8n), 'the end of the aborted batch');
        // Offsets 8–9 and the marker at 10: messages again.
        await send(['d', 'e'], 'commit');
        await waitUntil(async () => seen.some((b) => b.next >= 11n), 'the records after it');
        // Let any late end be told before judging.
        await new Promise((r) => setTimeout(r, 500));
      } finally {
        await consumer.disconnect();
        await producer.disconnect();
      }
      expect(seen.map((b) => b.first)).not.toContain(4n);
      // No end told lies inside or at the end of a batch eachBatch had.
      for (const end of ends) {
        expect(seen.some((b) => end > b.first && end <= b.next)).toBe(false);
      }
      expect(ends).toContain(8n);
    },
  );
});
