// The Kafka source against a real broker, on the client under test: a handler that holds batches
// (as the pipeline does between commits) and then fails to make them durable on an idle flush. The
// consumer already stands past the held messages, and exactly-once has aborted their transaction:
// unless the source goes back to what Kafka committed, they are never handed over again, and the
// next commit covers them (events lost).
import { randomUUID } from 'node:crypto';
import { describe, it } from 'vitest';
import { KafkaSource, type PartitionBatch } from '../../src/sources/kafkaSource.js';
import {
  createTopic,
  eventMessages,
  makeEvents,
  produce,
  requireBroker,
  testClient,
  waitUntil,
} from '../helpers/kafka.js';

const offsetsOf = (batch: PartitionBatch) =>
  batch.items.map((item) => (item.position.kind === 'offset' ? item.position.offset : '?'));

describe('Kafka source: an idle flush that fails', () => {
  it('hands the held messages over again, before any later one', { timeout: 180_000 }, async ({ expect }) => {
    await requireBroker();
    const topic = `source-flush-${randomUUID().slice(0, 8)}`;
    const groupId = `${topic}-group`;
    await createTopic(topic, 1);
    const kafka = await testClient(`source-flush-${randomUUID().slice(0, 8)}`);
    const admin = kafka.admin();
    await admin.connect();
    const source = new KafkaSource(kafka, { topic, groupId, commitOffsets: true, maxWaitTimeInMs: 100 });
    const delivered: string[][] = [];
    let flushes = 0;
    let resyncs = 0;
    const events = makeEvents(4, 2);
    try {
      await source.start({
        assigned: async () => {},
        revoked: async () => {},
        // Holds every batch: nothing is durable until a flush.
        batch: async (batch) => {
          delivered.push(offsetsOf(batch));
          return [];
        },
        flush: async () => {
          flushes++;
          throw new Error('the changelog could not be written');
        },
        resync: async (partition) => {
          resyncs++;
          const [committed] = await admin.fetchCommittedOffsets(groupId, topic, [partition]);
          const offset = BigInt(committed?.offset ?? '-1');
          return offset < 0n ? 0n : offset;
        },
      });
      await produce(topic, eventMessages(events.slice(0, 3)));
      await waitUntil(() => delivered.flat().includes('2'), 'the first three messages');
      const before = delivered.length;
      // The batch that delivered them may still be finishing (a flush waits for none): try until one ran.
      await waitUntil(async () => {
        await source.flushIdle();
        return flushes > 0;
      }, 'an idle flush');
      expect(flushes).toBe(1);
      await produce(topic, eventMessages(events.slice(3)));
      await waitUntil(() => delivered.flat().includes('3'), 'the fourth message');
      // Nothing was committed: after the failed flush, every message from offset 0 comes again, in order.
      expect(delivered.slice(before).flat()).toEqual(['0', '1', '2', '3']);
      expect(resyncs).toBeGreaterThan(0);
    } finally {
      await source.stop();
      await admin.disconnect();
    }
  });
});
