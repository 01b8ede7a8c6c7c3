// The adapter's transactional producers against a real broker, on each client library whatever
// CELLSTREAM_TEST_KAFKA_CLIENT says: exactly-once hands a partition's transactional id from one
// instance to the next on every rebalance, so taking an id over has to work on both.
import { randomUUID } from 'node:crypto';
import { describe, it } from 'vitest';
import { KAFKA_CLIENTS, type KafkaClientName } from '../../src/kafka/adapter.js';
import { createKafka } from '../../src/kafka/client.js';
import { mapFenced } from '../../src/kafka/kafkaErrors.js';
import { brokers, createTopic, readTopic, requireBroker } from '../helpers/kafka.js';

/**
 * The topic's committed values once there are `count` of them, or as they stand after 15 s. A
 * commit returns once the coordinator has logged it; it writes the partitions' markers afterwards,
 * so a reader right after may not see the last transaction yet (seen in CI on Node 24).
 */
async function committedValues(topic: string, count: number): Promise<string[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const values = (await readTopic(topic)).map((m) => m.value);
    if (values.length >= count || Date.now() > deadline) return values;
    await new Promise((r) => setTimeout(r, 200));
  }
}

const instance = (client: KafkaClientName) =>
  createKafka({ brokers, clientId: `txn-${randomUUID().slice(0, 8)}`, client, logLevel: 'nothing' });

describe('Kafka transactions: a transactional id taken over by another instance', () => {
  it.for(KAFKA_CLIENTS)(
    '%s: the new holder gets transactions at once, the old one is fenced, readers see both commits',
    { timeout: 120_000 },
    async (client, { expect }) => {
      await requireBroker();
      const topic = `txn-takeover-${randomUUID().slice(0, 8)}`;
      await createTopic(topic, 1);
      const id = `${topic}-id`;
      // A producer id registered first, so the id taken over below is not the broker's producer 0,
      // whose claim a client asking with the wrong defaults (id 0, epoch 0) would happen to match.
      const first = (await instance(client)).transactionalProducer(`${id}-before`);
      await first.connect();
      await (await first.transaction()).abort();
      await first.disconnect();

      const send = (value: string) => ({ topicMessages: [{ topic, messages: [{ key: 'k', value }] }] });
      const old = (await instance(client)).transactionalProducer(id);
      await old.connect();
      const committed = await old.transaction();
      await committed.sendBatch(send('from the first holder'));
      await committed.commit();

      // Another instance (its own client, as after a rebalance) takes the id over.
      const next = (await instance(client)).transactionalProducer(id);
      await next.connect();
      try {
        const txn = await next.transaction();
        await txn.sendBatch(send('from the second holder'));
        await txn.commit();

        // The first holder's next transaction is refused as fenced, never committed.
        const zombie = old.transaction().then(async (t) => {
          await t.sendBatch(send('from the fenced holder'));
          await t.commit();
        });
        const err = await zombie.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(mapFenced(err, id)).toMatchObject({ code: 'KAFKA_FENCED' });
      } finally {
        await old.disconnect();
        await next.disconnect();
      }
      expect(await committedValues(topic, 2)).toEqual(['from the first holder', 'from the second holder']);
    },
  );
});
