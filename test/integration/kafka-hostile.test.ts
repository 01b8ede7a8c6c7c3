// The Kafka edges against a real broker: a poison record nested thousands deep is dead-lettered
// (EVENT_TOO_DEEP) while the consumer goes on; a dead letter too large for the dead-letter topic is
// kept without its value (and long key) instead of failing its partition on every redelivery; a
// batch that keeps failing is logged with its error, and the pipeline resumes once the cause is gone. (A SIGTERM in `cellstream kafka`'s first moments:
// kafka-cli-health.test.ts.)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigResourceTypes } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { keyPartitioner } from '../../src/kafka/keyPartitioner.js';
import {
  type KafkaPipeline,
  type KafkaPipelineOptions,
  startKafkaPipeline,
} from '../../src/pipelines/kafkaPipeline.js';
import { DEAD_LETTER_HEADERS } from '../../src/sinks/kafkaSink.js';
import {
  brokers,
  createInputTopic,
  createTopic,
  deliveryModes,
  eventMessages,
  judge,
  kafkaClientUnderTest,
  loadTestModel,
  makeEvents,
  offlineReplay,
  produce,
  readTopic,
  requireBroker,
  type Topics,
  testKafka,
  waitForCatchUp,
} from '../helpers/kafka.js';

/** Runs a pipeline on `t` (the client under test, a state directory of its own) while `during` runs, then stops it. */
async function runPipeline(
  t: Topics,
  options: Partial<KafkaPipelineOptions>,
  during: (pipeline: KafkaPipeline) => Promise<void>,
): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'cellstream-kafka-hostile-'));
  const pipeline = await startKafkaPipeline({
    model: await loadTestModel(),
    brokers,
    ...t,
    stateDir,
    maxWaitTimeInMs: 100,
    logLevel: 'error',
    client: kafkaClientUnderTest,
    ...options,
  });
  try {
    await during(pipeline);
  } finally {
    await pipeline.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

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
    await runPipeline(t, {}, () => waitForCatchUp(t));
    expect(await readTopic(t.outputTopic)).toHaveLength(events.length);
    const dead = await readTopic(t.deadLetterTopic);
    expect(dead.map((d) => d.headers[DEAD_LETTER_HEADERS.code]?.toString())).toEqual([
      'EVENT_TOO_DEEP',
      'EVENT_TOO_DEEP',
    ]);
    expect(dead.map((d) => d.value)).toEqual(poison.map((p) => p.value));
  });
});

/** Creates `topic` with one partition and the given topic configs (before the pipeline would). */
const topicWithConfig = (topic: string, configEntries: Array<{ name: string; value: string }>) =>
  createTopic(topic, 1, configEntries);

/** `topic` takes records up to the broker's default size again. */
async function liftMessageLimit(topic: string): Promise<void> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name: topic,
          configEntries: [{ name: 'max.message.bytes', value: '1048588' }],
        },
      ],
    });
  } finally {
    await admin.disconnect();
  }
}

describe.each(deliveryModes)(
  'a dead letter too large for the dead-letter topic ($mode)',
  ({ exactlyOnce }) => {
    it('is kept without its value (and its long key), marked cellstream.dropped; every other event served', async () => {
      await requireBroker();
      const t = await createInputTopic(`dl-large-${exactlyOnce ? 'eos' : 'alo'}`, 1);
      // The input topic takes up to ~1 MB; the dead-letter topic only 70 KB.
      await topicWithConfig(t.deadLetterTopic, [{ name: 'max.message.bytes', value: '70000' }]);
      const events = makeEvents(40, 5, 7);
      const big = 'x'.repeat(100_000);
      const longKey = 'k'.repeat(3000);
      const poison = [
        { key: 'p1', value: big },
        { key: longKey, value: big },
        { key: 'p3', value: 'not json' },
      ];
      const messages = eventMessages(events);
      await produce(t.inputTopic, [...messages.slice(0, 20), ...poison, ...messages.slice(20)]);
      await runPipeline(t, { exactlyOnce }, () => waitForCatchUp(t));
      expect(await readTopic(t.outputTopic)).toHaveLength(events.length);
      const dead = await readTopic(t.deadLetterTopic);
      expect(
        dead.map((d) => ({
          key: d.key,
          value: d.bytes?.toString() ?? null,
          dropped: d.headers[DEAD_LETTER_HEADERS.dropped]?.toString(),
          offset: d.headers[DEAD_LETTER_HEADERS.offset]?.toString(),
        })),
      ).toEqual([
        { key: 'p1', value: null, dropped: 'value=100000', offset: '20' },
        { key: null, value: null, dropped: 'value=100000,key=3000', offset: '21' },
        { key: 'p3', value: 'not json', dropped: undefined, offset: '22' },
      ]);
    });
  },
);

describe('a batch that keeps failing', () => {
  it('is logged with its error, throttled, and the partition resumes once the cause is gone', async () => {
    await requireBroker();
    const t = await createInputTopic('keeps-failing', 1);
    // No prediction fits: every batch fails at its send, and is redelivered.
    await topicWithConfig(t.outputTopic, [{ name: 'max.message.bytes', value: '100' }]);
    const events = makeEvents(30, 5, 9);
    await produce(t.inputTopic, eventMessages(events));
    // Told as a retry in place, or (kafkajs, for an error it does not retry) as a rejoin.
    const told: Array<{ message: string; repeats: number; via: 'retry' | 'rejoin' }> = [];
    const options = {
      logLevel: 'nothing' as const,
      // kafkajs rejoins after each failure of this kind; a loaded machine must not run out of rejoins
      // before the limit is lifted.
      maxRejoins: 1000,
      onConsumerRetry: (error: Error, repeats: number) =>
        told.push({ message: error.message, repeats, via: 'retry' }),
      onRejoin: (_attempt: number, error: Error) =>
        told.push({ message: error.message, repeats: 1, via: 'rejoin' }),
    };
    await runPipeline(t, options, async (pipeline) => {
      const deadline = Date.now() + 90_000;
      while (told.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(told.length, JSON.stringify(pipeline.health.snapshot(t.groupId))).toBeGreaterThan(0);
      expect(told[0]).toMatchObject({ repeats: 1 });
      expect(told[0].message).toMatch(/MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE|larger than the max/);
      // The cause goes away: the same batches go through, nothing lost.
      await liftMessageLimit(t.outputTopic);
      await waitForCatchUp(t);
    });
    // At most one line per 30 s after the first, whatever the number of retries.
    expect(told.filter((x) => x.via === 'retry').length).toBeLessThanOrEqual(3);
    const out = await readTopic(t.outputTopic);
    expect(new Set(out.map((m) => `${m.key}@${JSON.parse(m.value).ts}`)).size).toBe(events.length);
  });
});

describe("one partition's predictions refused while another's go through (at-least-once)", () => {
  it('keeps the other partition going, and redelivers the refused one until it goes: none missing, none stepped twice', async () => {
    await requireBroker();
    const t = await createInputTopic('send-fails-one', 2);
    // A batch of partition 1's predictions (long keys) is over the output topic's limit; one of
    // partition 0's is far below it. Batches of 20: sends go while the next batch is stepped, so a
    // refused one is often found during the other partition's batch.
    await topicWithConfig(t.outputTopic, [{ name: 'max.message.bytes', value: '12000' }]);
    const partitionOf = keyPartitioner(t.inputTopic, 2);
    const keysOf = (p: number, make: (i: number) => string) => {
      const keys: string[] = [];
      for (let i = 0; keys.length < 4; i++) if (partitionOf(make(i)) === p) keys.push(make(i));
      return keys;
    };
    const short = keysOf(0, (i) => `s${i}`);
    const long = keysOf(1, (i) => `${i}-${'l'.repeat(480)}`);
    const events = makeEvents(400, 8, 11).map((e, i) => ({
      ...e,
      key: i % 2 === 0 ? short[(i % 8) >> 1] : long[(i % 8) >> 1],
    }));
    await produce(t.inputTopic, eventMessages(events));
    const refused: string[] = [];
    const options = {
      maxBatch: 20,
      logLevel: 'nothing' as const,
      maxRejoins: 1000,
      onConsumerRetry: (error: Error) => refused.push(error.message),
      onRejoin: (_attempt: number, error: Error) => refused.push(error.message),
    };
    const shortCount = events.filter((e) => short.includes(e.key)).length;
    await runPipeline(t, options, async () => {
      // Partition 0 is served in full while partition 1 keeps failing.
      const deadline = Date.now() + 90_000;
      const shortOut = async () =>
        new Set(
          (await readTopic(t.outputTopic)).filter((m) => short.includes(m.key ?? '')).map((m) => m.value),
        ).size;
      while ((refused.length === 0 || (await shortOut()) < shortCount) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 300));
      expect(refused[0]).toMatch(/MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE|larger than the max/);
      expect(await shortOut()).toBe(shortCount);
      expect((await readTopic(t.outputTopic)).some((m) => long.includes(m.key ?? ''))).toBe(false);
      await liftMessageLimit(t.outputTopic);
      await waitForCatchUp(t);
    });
    const verdict = judge(await offlineReplay(await loadTestModel(), events), await readTopic(t.outputTopic));
    expect(verdict).toMatchObject({ missing: 0, divergent: 0 });
  });
});
