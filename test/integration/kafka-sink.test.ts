import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Prediction } from '../../src/events/types.js';
import { KafkaSink } from '../../src/sinks/kafkaSink.js';
import { createTopic, readTopic, requireBroker, testClient } from '../helpers/kafka.js';

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
