import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Rejected } from '../../src/engine/types.js';
import type { Prediction } from '../../src/events/types.js';
import type { KafkaSender } from '../../src/kafka/adapter.js';
import { DEAD_LETTER_HEADERS, KafkaSink } from '../../src/sinks/kafkaSink.js';
import { createTopic, readTopic, requireBroker, testClient, withFixtureAdmin } from '../helpers/kafka.js';

// One engine batch of wide outputs is several MB of predictions, over the broker's ~1 MB
// message.max.bytes: the sink must split it and still deliver every prediction in order.
describe('KafkaSink against a real broker', () => {
  it('delivers a batch larger than the broker accepts in one request, every prediction in order', async () => {
    await requireBroker();
    const topic = `sink-${randomUUID().slice(0, 8)}`;
    await createTopic(topic, 3);
    const output = Array.from({ length: 256 }, (_, j) => j / 7);
    const predictions: Prediction[] = Array.from({ length: 1000 }, (_, i) => ({
      key: `k${i % 10}`,
      ts: 1_700_000_000_000 + i,
      seq: Math.floor(i / 10) + 1,
      model: 'wide@1',
      output,
    }));
    const producer = (await testClient()).producer();
    await producer.connect();
    try {
      await new KafkaSink({ outputTopic: topic, deadLetterTopic: `${topic}-dead` }).send(producer, {
        predictions,
        rejected: [],
      });
    } finally {
      await producer.disconnect();
    }
    const got = await readTopic(topic);
    expect(got).toHaveLength(1000);
    for (let k = 0; k < 10; k++) {
      const seqs = got
        .filter((m) => m.key === `k${k}`)
        .sort((a, b) => Number(a.offset) - Number(b.offset))
        .map((m) => (JSON.parse(m.value) as Prediction).seq);
      expect(seqs).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    }
  });
});

// On a client whose transaction cannot go on after a refused send (@platformatic/kafka 2.x), the
// retry without the value fails with its batch; the redelivered batch must not be refused again.
describe('KafkaSink and a dead letter the dead-letter topic refused as too large', () => {
  it('sends it without its value at once when its batch comes again', async () => {
    await requireBroker();
    const id = randomUUID().slice(0, 8);
    const outputTopic = `sink-refused-${id}`;
    const deadLetterTopic = `${outputTopic}-dead`;
    await createTopic(outputTopic, 1);
    await withFixtureAdmin((admin) =>
      admin.createTopics([
        {
          topic: deadLetterTopic,
          numPartitions: 1,
          replicationFactor: 1,
          configEntries: [{ name: 'max.message.bytes', value: '70000' }],
        },
      ]),
    );
    const rejected: Rejected = {
      kind: 'rejected',
      reason: 'not an event',
      code: 'EVENT_MALFORMED_JSON',
      raw: 'x'.repeat(100_000),
      position: { kind: 'offset', topic: 'in', partition: 0, offset: '7' },
    };
    const producer = (await testClient()).producer();
    await producer.connect();
    // What each send asked for: the dead letters' values (null: sent without).
    const sent: Array<Array<string | null>> = [];
    const sender: KafkaSender = {
      sendBatch: (batch) => {
        sent.push(
          batch.topicMessages.flatMap((t) => t.messages.map((m) => (m.value == null ? null : 'value'))),
        );
        return producer.sendBatch(batch);
      },
    };
    try {
      const sink = new KafkaSink({ outputTopic, deadLetterTopic });
      await sink.send(sender, { predictions: [], rejected: [rejected] });
      expect(sent).toEqual([['value'], [null]]);
      sent.length = 0;
      await sink.send(sender, { predictions: [], rejected: [rejected] });
      expect(sent).toEqual([[null]]);
    } finally {
      await producer.disconnect();
    }
    const dead = await readTopic(deadLetterTopic);
    expect(dead.map((d) => [d.bytes, d.headers[DEAD_LETTER_HEADERS.dropped]?.toString()])).toEqual([
      [null, 'value=100000'],
      [null, 'value=100000'],
    ]);
  });
});
