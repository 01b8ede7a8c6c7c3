// The Kafka pipeline end to end against a real broker: predictions checked against an offline
// replay, poison records dead-lettered with reasons in headers, consumer lag back to 0.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { outputSize } from '../../src/model/index.js';
import type { Model } from '../../src/model/types.js';
import { type KafkaPipeline, startKafkaPipeline } from '../../src/pipelines/kafkaPipeline.js';
import { DEAD_LETTER_HEADERS } from '../../src/sinks/kafkaSink.js';
import {
  brokers,
  createInputTopic,
  deliveryModes,
  eventMessages,
  groupLag,
  judge,
  kafkaClientUnderTest,
  loadTestModel,
  makeEvents,
  offlineReplay,
  produce,
  readTopic,
  requireBroker,
  waitForCatchUp,
} from '../helpers/kafka.js';

const POISON = [
  { key: 'p1', value: '{"key":"p1","ts":1,' },
  { key: 'p2', value: '{"key":"p2","ts":1,"features":[1,2]}' },
  { key: 'p3', value: '{"key":"other","ts":1,"features":[1,2,3,4]}' },
  { key: null, value: '{"ts":1,"features":[1,2,3,4]}' },
  { key: 'p5', value: '[1,2,3]' },
  { key: 'p6', value: '{"key":"p6","features":[1,2,3,4]}' },
];
const POISON_CODES = [
  'EVENT_MALFORMED_JSON',
  'EVENT_WRONG_SIZE',
  'EVENT_KEY_MISMATCH',
  'EVENT_INVALID',
  'EVENT_INVALID',
  'EVENT_INVALID',
];

describe.each(deliveryModes)('Kafka pipeline ($mode)', ({ exactlyOnce }) => {
  const dirs: string[] = [];
  let pipeline: KafkaPipeline | undefined;
  afterAll(async () => {
    await pipeline?.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('predicts every event as the offline replay does, dead-letters poison with reasons, and catches up', async () => {
    await requireBroker();
    const model: Model = await loadTestModel();
    const t = await createInputTopic(exactlyOnce ? 'eos' : 'alo', 3);
    const events = makeEvents(3000, 300, 11);
    const messages = eventMessages(events);
    // Poison spread through the stream.
    const mixed: Array<{ key: string | null; value: string }> = [...messages];
    POISON.forEach((p, i) => {
      mixed.splice(400 * (i + 1), 0, p);
    });
    await produce(t.inputTopic, mixed);

    const stateDir = await mkdtemp(join(tmpdir(), 'cellstream-kafka-'));
    dirs.push(stateDir);
    pipeline = await startKafkaPipeline({
      model,
      brokers,
      ...t,
      stateDir,
      exactlyOnce,
      maxBatch: 250,
      maxWaitTimeInMs: 100,
      logLevel: 'error',
      client: kafkaClientUnderTest,
    });
    await waitForCatchUp(t);
    await pipeline.stop();
    pipeline = undefined;

    const verdict = judge(await offlineReplay(model, events), await readTopic(t.outputTopic));
    expect(verdict).toMatchObject({ received: events.length, missing: 0, divergent: 0, repeated: 0 });

    const dead = await readTopic(t.deadLetterTopic);
    expect(dead).toHaveLength(POISON.length);
    const byValue = new Map(dead.map((d) => [d.value, d]));
    POISON.forEach((p, i) => {
      const d = byValue.get(p.value);
      expect(d, p.value).toBeDefined();
      expect(d!.key).toBe(p.key);
      const h = (name: string) => d!.headers[name]?.toString();
      expect(h(DEAD_LETTER_HEADERS.code)).toBe(POISON_CODES[i]);
      expect(h(DEAD_LETTER_HEADERS.reason)?.length).toBeGreaterThan(5);
      expect(h(DEAD_LETTER_HEADERS.topic)).toBe(t.inputTopic);
      expect(h(DEAD_LETTER_HEADERS.partition)).toBe(
        String(d!.partition === undefined ? '' : h(DEAD_LETTER_HEADERS.partition)),
      );
      expect(BigInt(h(DEAD_LETTER_HEADERS.offset)!)).toBeGreaterThanOrEqual(0n);
    });
    expect(await groupLag(t.groupId, t.inputTopic)).toBe(0n);
  });
});

describe('Kafka pipeline passthrough (the benchmark baseline)', () => {
  it('sends each event on as a prediction of the model output width, through to lag 0', async () => {
    await requireBroker();
    const model: Model = await loadTestModel();
    const width = outputSize(model);
    const t = await createInputTopic('passthrough', 2);
    const events = makeEvents(300, 30, 5);
    await produce(t.inputTopic, eventMessages(events));
    const stateDir = await mkdtemp(join(tmpdir(), 'cellstream-kafka-'));
    const pipeline = await startKafkaPipeline({
      model,
      brokers,
      ...t,
      stateDir,
      passthrough: true,
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
    const out = (await readTopic(t.outputTopic)).map((m) => JSON.parse(m.value));
    expect(out).toHaveLength(events.length);
    const byKeyTs = new Map(events.map((e) => [`${e.key}/${e.ts}`, e]));
    for (const p of out) {
      const e = byKeyTs.get(`${p.key}/${p.ts}`)!;
      expect(p).toMatchObject({ seq: 0, model: 'passthrough' });
      // The model's width, not the event's: the baseline's messages are the size the model's are.
      expect(p.output).toEqual(Array.from({ length: width }, (_, i) => e.features?.[i] ?? 0));
    }
  });
});
