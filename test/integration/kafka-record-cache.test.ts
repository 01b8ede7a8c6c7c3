// The Kafka pipeline's record cache between commits, against a real broker: a key stepped in many
// batches of one commit interval reaches the changelog once, with its last state; and an instance
// SIGKILLed while it holds uncommitted work is redelivered from the committed offsets and predicts
// exactly what the offline replay does.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Event, Prediction } from '../../src/events/types.js';
import { startKafkaPipeline } from '../../src/pipelines/kafkaPipeline.js';
import { type ChangelogEntry, ChangelogReader } from '../../src/state/changelogReader.js';
import { decodeStateRecord } from '../../src/state/recordCodec.js';
import { ensureBuilt } from '../helpers/build.js';
import {
  brokers,
  createInputTopic,
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
  testClient,
  testKafka,
  waitForCatchUp,
  waitUntil,
  withAdmin,
} from '../helpers/kafka.js';
import { child } from '../helpers/kafkaFaults.js';

/** Every record of the changelog topic, by partition order. */
/**
 * Writes `committed` to `topic` in a committed transaction and `pending` in one left open: a
 * pipeline reads (read_committed) up to the open one while the partition's end lies past it, so
 * no batch of that partition ever catches up. `close` aborts the open one.
 */
async function behindOpenTransaction(
  topic: string,
  committed: ReadonlyArray<{ key: string | null; value: string; partition?: number }>,
  pending: ReadonlyArray<{ key: string | null; value: string; partition?: number }>,
) {
  const producer = testKafka().producer({ transactionalId: `${topic}-writer`, maxInFlightRequests: 1 });
  await producer.connect();
  const done = await producer.transaction();
  await done.send({ topic, messages: [...committed] });
  await done.commit();
  const open = await producer.transaction();
  await open.send({ topic, messages: [...pending] });
  return {
    close: async () => {
      await open.abort();
      await producer.disconnect();
    },
  };
}

async function changelogRecords(topic: string): Promise<ChangelogEntry[]> {
  const reader = new ChangelogReader(await testClient(), { topic });
  const out: ChangelogEntry[] = [];
  try {
    for (const [partition, b] of await reader.bounds()) {
      if (b.high > b.low)
        await reader.read(partition, b.low, b.high, async (entries) => void out.push(...entries));
    }
  } finally {
    await reader.stop();
  }
  return out;
}

async function committedTotal(groupId: string, topic: string): Promise<bigint> {
  return withAdmin(async (admin) => {
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return committed.partitions.reduce((n, p) => n + (BigInt(p.offset) > 0n ? BigInt(p.offset) : 0n), 0n);
  });
}

/**
 * Counts the messages of `topic` as a read_uncommitted consumer sees them: in exactly-once mode,
 * predictions of open transactions too (the admin's offsets stop at the last committed one).
 */
async function countAll(topic: string) {
  const consumer = testKafka().consumer({
    groupId: `count-${topic}`,
    readUncommitted: true,
    maxWaitTimeInMs: 100,
  });
  let n = 0;
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      n += batch.messages.length;
    },
  });
  return { count: () => n, stop: () => consumer.disconnect() };
}

describe.each(deliveryModes)('Kafka record cache ($mode)', ({ mode, exactlyOnce }) => {
  it('writes a key stepped in many batches of one commit interval to the changelog once, with its last state', async () => {
    await requireBroker();
    const model = await loadTestModel();
    const t = await createInputTopic(exactlyOnce ? 'cache-eos' : 'cache', 1);
    const events: Event[] = Array.from({ length: 60 }, (_, i) => ({
      key: i % 3 === 0 ? 'other' : 'hot',
      ts: 1_700_000_000_000 + i,
      features: [i / 60, 1 - i / 60, 0.5, -0.25],
    }));
    // All in the topic before the pipeline starts, so one fetch brings them, cut into 12 batches
    // of 5; only the last one catches up with the partition, so they all fall in one commit.
    await produce(t.inputTopic, eventMessages(events));
    const dir = await mkdtemp(join(tmpdir(), 'cellstream-cache-'));
    const batches: number[] = [];
    const pipeline = await startKafkaPipeline({
      model,
      brokers,
      ...t,
      stateDir: dir,
      exactlyOnce,
      maxBatch: 5,
      commitIntervalMs: 600_000,
      maxWaitTimeInMs: 100,
      logLevel: 'nothing',
      client: kafkaClientUnderTest,
      onBatch: (r) => batches.push(r.events),
    });
    try {
      await waitForCatchUp(t);
      const expected = await offlineReplay(model, events);
      const verdict = judge(expected, await readTopic(t.outputTopic));
      expect(verdict).toMatchObject({ received: 60, missing: 0, divergent: 0, repeated: 0 });
      // Every batch was reported, once its state was durable.
      expect(batches).toEqual(Array(12).fill(5));

      const records = await changelogRecords(t.changelogTopic);
      const byKey = new Map<string, ChangelogEntry[]>();
      for (const r of records) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r]);
      expect([...byKey.keys()].sort()).toEqual(['hot', 'other']);
      for (const key of ['hot', 'other']) {
        const written = byKey.get(key)!;
        expect(written).toHaveLength(1);
        const record = decodeStateRecord(written[0].value!, key);
        const last = expected.get(key)!.at(-1) as Prediction;
        expect(record.seq).toBe(last.seq);
        expect(Array.from(record.lastOutput!)).toEqual(last.output.map(Math.fround));
        // LMDB holds the same record.
        const [local] = await pipeline.store.getMany([key]);
        expect(local?.seq).toBe(last.seq);
        expect(Array.from(local!.state)).toEqual(Array.from(record.state));
      }
    } finally {
      await pipeline.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('commits held batches after the interval when no more come, though the partition is not caught up', async () => {
    await requireBroker();
    const model = await loadTestModel();
    const t = await createInputTopic(exactlyOnce ? 'cache-idle-eos' : 'cache-idle', 1);
    const events = makeEvents(40, 8, 41);
    const writer = await behindOpenTransaction(
      t.inputTopic,
      eventMessages(events.slice(0, 39)),
      eventMessages(events.slice(39)),
    );
    const dir = await mkdtemp(join(tmpdir(), 'cellstream-cache-idle-'));
    const pipeline = await startKafkaPipeline({
      model,
      brokers,
      ...t,
      stateDir: dir,
      exactlyOnce,
      maxBatch: 10,
      commitIntervalMs: 500,
      maxWaitTimeInMs: 100,
      logLevel: 'nothing',
      client: kafkaClientUnderTest,
    });
    try {
      await waitUntil(
        async () => (await committedTotal(t.groupId, t.inputTopic)) === 39n,
        'the held batches committed',
        60_000,
      );
      const verdict = judge(await offlineReplay(model, events.slice(0, 39)), await readTopic(t.outputTopic));
      expect(verdict).toMatchObject({ received: 39, missing: 0, divergent: 0, repeated: 0 });
      expect(pipeline.stats.predictions).toBe(39);
    } finally {
      await writer.close();
      await pipeline.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("keeps a held partition's idle commit when another partition's batch comes first", async () => {
    await requireBroker();
    const model = await loadTestModel();
    const t = await createInputTopic(exactlyOnce ? 'cache-idle2-eos' : 'cache-idle2', 2);
    // Partition 0: committed events, then an input transaction left open, so its batch never
    // catches up and is held until its idle commit. Partition 1: events that come later and
    // catch up (exactly-once commits that partition alone). Keys apart, so each replays alone.
    const held = makeEvents(20, 6, 43);
    const later = makeEvents(10, 4, 44).map((e) => ({ ...e, key: `later-${e.key}` }));
    const writer = await behindOpenTransaction(
      t.inputTopic,
      eventMessages(held).map((m) => ({ ...m, partition: 0 })),
      eventMessages(makeEvents(1, 1, 45)).map((m) => ({ ...m, partition: 0 })),
    );
    const dir = await mkdtemp(join(tmpdir(), 'cellstream-cache-idle2-'));
    const pipeline = await startKafkaPipeline({
      model,
      brokers,
      ...t,
      stateDir: dir,
      exactlyOnce,
      maxBatch: 50,
      // Long enough that partition 1's batch comes while partition 0 holds.
      commitIntervalMs: 8000,
      maxWaitTimeInMs: 100,
      logLevel: 'nothing',
      client: kafkaClientUnderTest,
    });
    try {
      // The source reports each batch it handed over, held ones too.
      await waitUntil(() => pipeline.health.secondsSinceLastCommit() !== null, 'the held batch');
      expect(pipeline.stats.batches).toBe(0);
      await produce(
        t.inputTopic,
        eventMessages(later).map((m) => ({ ...m, partition: 1 })),
      );
      await waitUntil(
        async () => (await committedTotal(t.groupId, t.inputTopic)) === BigInt(held.length + later.length),
        'both partitions committed',
        60_000,
      );
      const expected = await offlineReplay(model, [...held, ...later]);
      const verdict = judge(expected, await readTopic(t.outputTopic));
      expect(verdict).toMatchObject({ received: 30, missing: 0, divergent: 0, repeated: 0 });
    } finally {
      await writer.close();
      await pipeline.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('SIGKILLed while holding uncommitted batches: redelivered from the committed offsets, predictions identical', async () => {
    await requireBroker();
    ensureBuilt();
    const model = await loadTestModel();
    const t = await createInputTopic(exactlyOnce ? 'cache-kill-eos' : 'cache-kill', 1);
    const events = makeEvents(3000, 60, 31);
    const dir = await mkdtemp(join(tmpdir(), 'cellstream-cache-kill-'));
    // One event per batch and a long interval: the partition takes seconds to catch up, and until
    // then nothing is committed while predictions go out.
    const args = ['--batch', '1', '--commit-interval', '600000'];
    let instance = await child(t, dir, exactlyOnce, { args });
    try {
      // In one request, so the instance's first fetch brings them all: it catches up only at the end.
      await produce(t.inputTopic, eventMessages(events), events.length);
      const sent = await countAll(t.outputTopic);
      try {
        await waitUntil(() => sent.count() >= 50, 'predictions before the kill');
      } finally {
        await sent.stop();
      }
      await instance.kill();
      // Read once the instance is dead, so final: the kill came mid-interval, with predictions
      // out (exactly-once: in an open transaction) for events whose offsets were not committed.
      expect(await committedTotal(t.groupId, t.inputTopic)).toBe(0n);

      instance = await child(t, dir, exactlyOnce, { args: ['--commit-interval', '600000'] });
      await waitForCatchUp(t, 300_000);
      await instance.stop();
      const verdict = judge(await offlineReplay(model, events), await readTopic(t.outputTopic));
      process.stdout.write(`[kafka-record-cache] SIGKILL mid-interval ${mode} ${JSON.stringify(verdict)}\n`);
      expect(verdict).toMatchObject({ missing: 0, divergent: 0 });
      // At-least-once, the held predictions were sent again, identical; exactly-once, their
      // transaction was aborted and a read_committed reader sees each once.
      if (exactlyOnce) expect(verdict.repeated).toBe(0);
      else expect(verdict.repeated).toBeGreaterThan(0);
    } finally {
      if (instance.exitCode() === undefined) await instance.kill();
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
