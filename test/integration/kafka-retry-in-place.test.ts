// A batch whose handler fails once, against a real broker, on each client: the client retries it
// (kafkajs by rejoining the group, @platformatic/kafka in place as the same member with the same
// assignment), and afterwards the source counts as a member of its group again and the health
// wired to it as the pipeline wires it is ready, with every message processed. On
// @platformatic/kafka no join follows such a retry, so a source that only trusted joins stayed
// "not a member" (/readyz 503, no idle or stop flush) until the next rebalance.
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { KAFKA_CLIENTS, type KafkaClientName } from '../../src/kafka/adapter.js';
import { createKafka } from '../../src/kafka/client.js';
import { KafkaHealth } from '../../src/pipelines/kafkaHealth.js';
import { KafkaSource } from '../../src/sources/kafkaSource.js';
import {
  brokers,
  createInputTopic,
  eventMessages,
  makeEvents,
  produce,
  requireBroker,
  waitUntil,
} from '../helpers/kafka.js';

let source: KafkaSource | undefined;
afterEach(async () => {
  await source?.stop();
  source = undefined;
});

describe.each(KAFKA_CLIENTS.map((client) => ({ client })))(
  'a batch that fails once, retried by the $client client',
  ({ client }: { client: KafkaClientName }) => {
    it('leaves the source a member of its group and the health ready; every message processed', async () => {
      await requireBroker();
      const t = await createInputTopic(`retry-in-place-${client}`, 2);
      const events = makeEvents(300, 30, 41);
      await produce(t.inputTopic, eventMessages(events));
      const kafka = await createKafka({
        brokers,
        clientId: `retry-${randomUUID().slice(0, 8)}`,
        client,
        logLevel: 'nothing',
      });
      const health = new KafkaHealth({ stallTimeoutMs: 60_000, brokerTimeoutMs: 30_000 });
      let crashes = 0;
      source = new KafkaSource(kafka, {
        topic: t.inputTopic,
        groupId: t.groupId,
        commitOffsets: true,
        maxBatch: 50,
        maxWaitTimeInMs: 100,
        heartbeatInterval: 500,
        // Wired as startKafkaPipeline wires its health.
        events: {
          joined: (ps) => health.joined(ps),
          revoked: (ps) => health.revoked(ps),
          brokerContact: () => health.brokerContact(),
          fetched: () => health.fetched(),
          lag: (p, n) => health.lag(p, n),
          committed: (p, n) => health.committed(p, n),
          crashed: (_err, restart) => {
            crashes++;
            health.crashed(restart);
          },
          resumed: () => health.resumed(),
        },
      });
      const processed = new Set<string>();
      let failed = false;
      await source.start({
        assigned: async () => {},
        revoked: async () => {},
        resync: async () => undefined,
        batch: async (batch) => {
          if (!failed) {
            failed = true;
            throw new Error('a changelog send failed (injected once)');
          }
          for (const item of batch.items) {
            if ('kind' in item) throw new Error(`message rejected: ${item.reason}`);
            processed.add(
              `${batch.partition}@${item.position.kind === 'offset' ? item.position.offset : ''}`,
            );
          }
          return undefined;
        },
      });
      await waitUntil(() => processed.size === events.length, 'every message processed', 120_000);
      expect(failed).toBe(true);
      // kafkajs retries a failed batch in its runner first, with no crash to tell; this client tells one.
      if (client === 'platformatic') expect(crashes).toBeGreaterThanOrEqual(1);
      // A member again once the client fetched after the failure, without waiting for a rebalance.
      await waitUntil(() => source!.joined, 'the source to count as a member again', 20_000);
      await waitUntil(
        () => health.notReadyReason(t.groupId) === undefined,
        `the health to be ready (now: ${health.notReadyReason(t.groupId)})`,
        20_000,
      );
      const snapshot = health.snapshot(t.groupId);
      expect(snapshot.member).toBe(true);
      expect(snapshot.crashes).toBe(crashes);
      // @platformatic/kafka retried in place: its only join was the first one.
      if (client === 'platformatic') expect(snapshot.rebalances).toBe(1);
    }, 180_000);
  },
);
