// The Kafka source against a real broker, on the client under test: a handler that holds batches
// (as the pipeline does between commits) and then fails to make them durable on an idle flush. The
// consumer already stands past the held messages, and exactly-once has aborted their transaction:
// unless the source goes back to what Kafka committed, they are never handed over again, and the
// next commit covers them (events lost). The same when the handler learns, while handling another
// partition's batch, that what it held of a partition is lost (a send of its predictions failed after
// that partition's batch had returned): `distrust` must hand that partition's messages over again,
// even when no new message comes to it.
import { randomUUID } from 'node:crypto';
import { describe, it } from 'vitest';
import { keyPartitioner } from '../../src/kafka/keyPartitioner.js';
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

describe("Kafka source: a partition distrusted during another partition's batch", () => {
  it('resyncs it after that batch (again after a failed try) and hands its held messages over again, though no new one comes', {
    timeout: 180_000,
  }, async ({ expect }) => {
    await requireBroker();
    const topic = `source-distrust-${randomUUID().slice(0, 8)}`;
    const groupId = `${topic}-group`;
    await createTopic(topic, 2);
    const partitionOf = keyPartitioner(topic, 2);
    const keyIn = (p: number) => {
      for (let i = 0; ; i++) if (partitionOf(`key-${i}`) === p) return `key-${i}`;
    };
    const message = (key: string, i: number) => ({
      key,
      value: JSON.stringify({ key, ts: i, features: [i] }),
    });
    const kafka = await testClient(`source-distrust-${randomUUID().slice(0, 8)}`);
    const admin = kafka.admin();
    await admin.connect();
    const source = new KafkaSource(kafka, { topic, groupId, commitOffsets: true, maxWaitTimeInMs: 100 });
    const delivered: Array<{ partition: number; offsets: string[] }> = [];
    const resynced: number[] = [];
    let distrusted = false;
    try {
      await source.start({
        assigned: async () => {},
        revoked: async () => {},
        // Partition 1 is held (never made durable); partition 0 is committed batch by batch.
        batch: async (batch) => {
          delivered.push({ partition: batch.partition, offsets: offsetsOf(batch) });
          if (batch.partition === 1) return [];
          // The first batch of partition 0 learns that partition 1's held batch is lost.
          if (!distrusted) {
            distrusted = true;
            source.distrust(1);
          }
          return undefined;
        },
        resync: async (partition) => {
          resynced.push(partition);
          // The first try fails (the broker away, say): it must be tried again, not forgotten.
          if (resynced.length === 1) throw new Error('the broker is away');
          const [committed] = await admin.fetchCommittedOffsets(groupId, topic, [partition]);
          const offset = BigInt(committed?.offset ?? '-1');
          return offset < 0n ? 0n : offset;
        },
      });
      await produce(topic, [message(keyIn(1), 1), message(keyIn(1), 2)]);
      await waitUntil(() => delivered.some((d) => d.partition === 1), "partition 1's messages");
      await produce(topic, [message(keyIn(0), 3)]);
      await waitUntil(() => delivered.some((d) => d.partition === 0), "partition 0's message");
      // No new message for partition 1: only the resync brings its held ones back.
      const ofOne = () => delivered.filter((d) => d.partition === 1).flatMap((d) => d.offsets);
      await waitUntil(() => ofOne().length >= 4, "partition 1's messages again");
      expect(resynced.slice(0, 2)).toEqual([1, 1]);
      expect(ofOne().slice(0, 4)).toEqual(['0', '1', '0', '1']);
      // Partition 0 was not touched: its one message came once.
      expect(delivered.filter((d) => d.partition === 0).map((d) => d.offsets)).toEqual([['0']]);
    } finally {
      await source.stop();
      await admin.disconnect();
    }
  });
});
