// Per-event isolation on the Kafka path, against a real broker: an over-long key, a key whose
// state another model wrote and a far-future ts are each dead-lettered with their own code,
// every other event's prediction equals an offline replay of the good events alone, and the
// consumer group catches up (lag 0).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { kafkaPipelineOptions } from '../../src/commands/kafka.js';
import { createState, modelFingerprint } from '../../src/model/index.js';
import type { Model } from '../../src/model/types.js';
import { type KafkaPipeline, startKafkaPipeline } from '../../src/pipelines/kafkaPipeline.js';
import { DEAD_LETTER_HEADERS } from '../../src/sinks/kafkaSink.js';
import {
  brokers,
  createInputTopic,
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
import { tinyLstm } from '../helpers/models.js';

describe('Kafka pipeline: one event’s or one key’s failure is its own', () => {
  const dirs: string[] = [];
  let pipeline: KafkaPipeline | undefined;
  afterAll(async () => {
    await pipeline?.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('dead-letters the bad events with their codes, predicts the others as without them, and catches up', async () => {
    await requireBroker();
    const model: Model = await loadTestModel();
    const t = await createInputTopic('isolation', 2);
    const events = makeEvents(1200, 60, 7);
    const stateDir = await mkdtemp(join(tmpdir(), 'cellstream-kafka-iso-'));
    dirs.push(stateDir);
    // The command's options: the ts bound is on by default there.
    pipeline = await startKafkaPipeline({
      ...kafkaPipelineOptions(model, { brokers, ...t, stateDir, maxBatch: 200, maxWaitTimeInMs: 100 }),
      logLevel: 'error',
      client: kafkaClientUnderTest,
    });
    // Key 'foreign' holds state another model wrote, through the changelog like any state.
    await pipeline.store.putMany([
      [
        'foreign',
        {
          seq: 2,
          ts: 0,
          state: createState(tinyLstm()),
          lastApplied: { kind: 'none' },
          fingerprint: modelFingerprint(tinyLstm(99)),
        },
      ],
    ]);

    const target = events[0].key;
    const bad = [
      { key: 'k'.repeat(600), ts: 1_700_000_000_000, features: [1, 2, 3, 4] },
      { key: 'x'.repeat(2500), ts: 1_700_000_000_000, features: [1, 2, 3, 4] },
      { key: 'foreign', ts: 1_700_000_000_000, features: [1, 2, 3, 4] },
      // A good key's far-future event: refused, and the key's later events go on as if it never came.
      { key: target, ts: 8.64e15, features: [1, 2, 3, 4] },
      { key: 'foreign', ts: 1_700_000_000_001, features: [1, 2, 3, 4] },
      // A key under the changelog's reserved prefix: before, its write failed the whole batch.
      { key: '\u0000cellstream.changelog.0', ts: 1_700_000_000_000, features: [1, 2, 3, 4] },
    ];
    const codes = [
      'EVENT_KEY_TOO_LONG',
      'EVENT_KEY_TOO_LONG',
      'STATE_MODEL_MISMATCH',
      'EVENT_TS_IN_FUTURE',
      'STATE_MODEL_MISMATCH',
      'STATE_KEY_RESERVED',
    ];
    const mixed = eventMessages(events);
    bad.forEach((e, i) => {
      mixed.splice(5 + 150 * i, 0, { key: e.key, value: JSON.stringify(e) });
    });
    await produce(t.inputTopic, mixed);

    await waitForCatchUp(t);
    const foreign = (await pipeline.store.getMany(['foreign']))[0];
    await pipeline.stop();
    pipeline = undefined;

    const verdict = judge(await offlineReplay(model, events), await readTopic(t.outputTopic));
    expect(verdict).toMatchObject({ received: events.length, missing: 0, divergent: 0, repeated: 0 });

    const dead = await readTopic(t.deadLetterTopic);
    expect(dead).toHaveLength(bad.length);
    const byValue = new Map(dead.map((d) => [d.value, d]));
    bad.forEach((e, i) => {
      const d = byValue.get(JSON.stringify(e));
      expect(d, e.key.slice(0, 20)).toBeDefined();
      expect(d!.headers[DEAD_LETTER_HEADERS.code]?.toString()).toBe(codes[i]);
      expect(d!.headers[DEAD_LETTER_HEADERS.reason]?.toString().length).toBeGreaterThan(10);
    });
    // The foreign state was left alone.
    expect(foreign?.seq).toBe(2);
    expect(await groupLag(t.groupId, t.inputTopic)).toBe(0n);
  });
});
