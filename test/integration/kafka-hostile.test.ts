// The Kafka edges against a real broker: a poison record nested thousands deep is dead-lettered
// (EVENT_TOO_DEEP) while the consumer goes on. (A SIGTERM in `cellstream kafka`'s first moments:
// kafka-cli-health.test.ts.)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startKafkaPipeline } from '../../src/pipelines/kafkaPipeline.js';
import { DEAD_LETTER_HEADERS } from '../../src/sinks/kafkaSink.js';
import {
  brokers,
  createInputTopic,
  eventMessages,
  kafkaClientUnderTest,
  loadTestModel,
  makeEvents,
  produce,
  readTopic,
  requireBroker,
  waitForCatchUp,
} from '../helpers/kafka.js';

const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

describe('Kafka edges', () => {
  it('dead-letters a record nested thousands deep with EVENT_TOO_DEEP and serves the others', async () => {
    await requireBroker();
    const t = await createInputTopic('deep', 1);
    const events = makeEvents(50, 5, 3);
    const poison = [
      { key: 'd1', value: nested(100_000) },
      { key: null, value: `{"key":"d2","ts":1,"features":[1,2,3,4],"x":${nested(5000)}}` },
    ];
    const messages = eventMessages(events);
    await produce(t.inputTopic, [...messages.slice(0, 25), ...poison, ...messages.slice(25)]);
    const stateDir = await mkdtemp(join(tmpdir(), 'cellstream-kafka-deep-'));
    const pipeline = await startKafkaPipeline({
      model: await loadTestModel(),
      brokers,
      ...t,
      stateDir,
      maxWaitTimeInMs: 100,
      logLevel: 'error',
      client: kafkaClientUnderTest,
    });
    try {
      await waitForCatchUp(t);
    } finally {
      await pipeline.stop();
      await rm(stateDir, { recursive: true, force: true });
    }
    expect(await readTopic(t.outputTopic)).toHaveLength(events.length);
    const dead = await readTopic(t.deadLetterTopic);
    expect(dead.map((d) => d.headers[DEAD_LETTER_HEADERS.code]?.toString())).toEqual([
      'EVENT_TOO_DEEP',
      'EVENT_TOO_DEEP',
    ]);
    expect(dead.map((d) => d.value)).toEqual(poison.map((p) => p.value));
  });
});
