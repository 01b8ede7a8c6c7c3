// ChangelogStore against a real broker: the shared StateStore contract, and restores of a fresh
// or stale local store from the changelog. Fails (never skips) without a broker.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import type { Outcome } from '../../src/engine/types.js';
import type { KafkaProducer } from '../../src/kafka/adapter.js';
import { createState, modelFingerprint } from '../../src/model/index.js';
import { referenceKernel } from '../../src/model/kernels/index.js';
import { ChangelogReader } from '../../src/state/changelogReader.js';
import { ChangelogStore, RESERVED_KEY_PREFIX } from '../../src/state/changelogStore.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { at } from '../helpers/envelopes.js';
import { createTopic, requireBroker, testClient, topicsFor, withAdmin } from '../helpers/kafka.js';
import { tinyLstm } from '../helpers/models.js';
import { expectSameRecord, makeRecord } from './records.js';
import { describeStateStoreContract } from './storeContract.js';

const PARTITIONS = 3;
let shared: Promise<{ topic: string; producer: KafkaProducer }> | undefined;
/** One changelog topic and producer for the file, made by the first test that needs them. */
function kafkaSide() {
  shared ??= (async () => {
    await requireBroker();
    const { changelogTopic: topic } = topicsFor('changelog-store');
    await createTopic(topic, PARTITIONS);
    const producer = (await testClient()).producer();
    await producer.connect();
    return { topic, producer };
  })();
  return shared;
}

afterAll(async () => {
  if (shared) await (await shared).producer.disconnect();
});

async function storeAt(path: string) {
  const { topic, producer } = await kafkaSide();
  return new ChangelogStore({
    local: await LmdbStore.open({ path }),
    topic,
    partitions: PARTITIONS,
    producer,
  });
}

/**
 * A changelog topic of its own for one restore test, its producer and reader, and `open` for
 * ChangelogStores over fresh LMDB directories; `close` stops and removes them all.
 */
async function restoreSetUp(name: string, partitions: number) {
  await requireBroker();
  const { changelogTopic: topic } = topicsFor(name);
  await createTopic(topic, partitions);
  const kafka = await testClient();
  const producer = kafka.producer();
  await producer.connect();
  const reader = new ChangelogReader(kafka, { topic });
  const dirs: string[] = [];
  const open = async (options: { keepLaterPosition?: boolean } = {}) => {
    const dir = await mkdtemp(join(tmpdir(), `cellstream-${name}-`));
    dirs.push(dir);
    return new ChangelogStore({
      local: await LmdbStore.open({ path: dir }),
      topic,
      partitions,
      producer,
      ...options,
    });
  };
  const close = async () => {
    await reader.stop();
    await producer.disconnect();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  };
  return { topic, producer, reader, open, close };
}

describeStateStoreContract(
  'ChangelogStore (LMDB + Kafka changelog)',
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cellstream-changelog-'));
    const path = join(dir, 'state');
    return {
      store: await storeAt(path),
      reopen: () => storeAt(path),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
  { durable: true },
);

describe('ChangelogStore restore', () => {
  it('rebuilds a missing local store from the changelog and catches a stale one up from its checkpoint', async () => {
    const { reader, open, close } = await restoreSetUp('restore', PARTITIONS);
    try {
      const writer = await open();
      await writer.putMany(Array.from({ length: 300 }, (_, i) => [`k${i}`, makeRecord(i, 16)] as const));
      await writer.deleteMany(['k0', 'k1']);
      await writer.putMany([['k2', makeRecord(1002, 16)]]);

      const fresh = await open();
      const reports = await fresh.restore([0, 1, 2], reader);
      expect(reports.every((r) => r.rebuilt)).toBe(true);
      expect(await fresh.size()).toBe(298);
      const [k0, k2, k299] = await fresh.getMany(['k0', 'k2', 'k299']);
      expect(k0).toBeUndefined();
      expectSameRecord(k2!, makeRecord(1002, 16));
      expectSameRecord(k299!, makeRecord(299, 16));

      // The writer goes on; `fresh` is now behind and catches up from its checkpoints only.
      await writer.putMany([['k3', makeRecord(2003, 16)]]);
      await writer.deleteMany(['k4']);
      const again = await fresh.restore([0, 1, 2], reader);
      expect(again.every((r) => !r.rebuilt)).toBe(true);
      expect(again.reduce((n, r) => n + r.records, 0)).toBe(2);
      expect(await fresh.size()).toBe(297);
      expectSameRecord((await fresh.getMany(['k3']))[0]!, makeRecord(2003, 16));
      // Up to date: nothing to read.
      expect((await fresh.restore([0, 1, 2], reader)).reduce((n, r) => n + r.records, 0)).toBe(0);
      await writer.close();
      await fresh.close();
    } finally {
      await close();
    }
  });
});

describe('ChangelogStore restore after a stale writer (at-least-once)', () => {
  it('never takes a record of an earlier input position over a later one: not in one run, not over the local copy', async () => {
    const { reader, open, close } = await restoreSetUp('restore-stale', PARTITIONS);
    // The key's state after the event at `offset` of input partition 4.
    const at = (offset: number) =>
      makeRecord(offset, 16, {
        lastApplied: { kind: 'offset', topic: 'events', partition: 4, offset: String(offset) },
      });
    try {
      // At-least-once stores keep the later position; exactly-once ones go by changelog order.
      const owner = await open({ keepLaterPosition: true });
      // An instance whose membership had moved on: its write lands after the new owner's.
      const stale = await open({ keepLaterPosition: true });
      await owner.putMany([
        ['k', at(180)],
        ['other', at(10)],
      ]);
      await stale.putMany([['k', at(120)]]);
      const fresh = await open({ keepLaterPosition: true });
      await fresh.restore([0, 1, 2], reader);
      expectSameRecord((await fresh.getMany(['k']))[0]!, at(180));
      expectSameRecord((await fresh.getMany(['other']))[0]!, at(10));
      // Without the option the last record in the changelog wins, stale or not.
      const inOrder = await open();
      await inOrder.restore([0, 1, 2], reader);
      expectSameRecord((await inOrder.getMany(['k']))[0]!, at(120));
      await inOrder.close();

      // Caught up from its checkpoint: the stale record alone in the run meets the local copy.
      await stale.putMany([['k', at(150)]]);
      await fresh.restore([0, 1, 2], reader);
      expectSameRecord((await fresh.getMany(['k']))[0]!, at(180));

      // Later positions, a delete and another partition's record still go in changelog order.
      await owner.putMany([['k', at(200)]]);
      await owner.deleteMany(['other']);
      const elsewhere = makeRecord(7, 16, {
        lastApplied: { kind: 'offset', topic: 'events', partition: 5, offset: '3' },
      });
      await owner.putMany([['moved', at(500)]]);
      await owner.putMany([['moved', elsewhere]]);
      await fresh.restore([0, 1, 2], reader);
      const [k, other, moved] = await fresh.getMany(['k', 'other', 'moved']);
      expectSameRecord(k!, at(200));
      expect(other).toBeUndefined();
      expectSameRecord(moved!, elsewhere);
      for (const s of [owner, stale, fresh]) await s.close();
    } finally {
      await close();
    }
  });
});

describe('ChangelogStore restore past records it cannot apply', () => {
  it('marks a key whose record does not decode, skips keys it cannot hold, and goes on to the end', async () => {
    const { producer, reader, open, close, topic } = await restoreSetUp('restore-garbage', 1);
    const model = tinyLstm();
    const fingerprint = modelFingerprint(model);
    const state = (i: number) => makeRecord(i, createState(model).length, { fingerprint });
    try {
      const writer = await open();
      await writer.putMany([
        ['good', state(1)],
        ['bad', state(2)],
      ]);
      // Garbage under an entity key (its latest record), under the store's reserved prefix (it
      // would overwrite the checkpoint), and without a key; then a good record after them all.
      const [sent] = await producer.sendBatch({
        acks: -1,
        topicMessages: [
          {
            topic,
            messages: [
              { key: 'bad', value: Buffer.from('not a state record'), partition: 0 },
              { key: `${RESERVED_KEY_PREFIX}changelog.0`, value: Buffer.from([1, 2, 3]), partition: 0 },
              { key: null, value: Buffer.from([3]), partition: 0 },
            ],
          },
        ],
      });
      await writer.putMany([['after', state(3)]]);
      const badOffset = sent!.baseOffset!;

      const fresh = await open();
      const [report] = await fresh.restore([0], reader);
      expect(report!.records).toBe(6);
      expect(report!.unreadable.map((u) => [u.kind, u.key, u.offset])).toEqual([
        ['undecodable', 'bad', badOffset],
        ['unusable-key', `${RESERVED_KEY_PREFIX}changelog.0`, String(BigInt(badOffset) + 1n)],
        ['unusable-key', '', String(BigInt(badOffset) + 2n)],
      ]);
      expect(report!.unreadable[0]).toMatchObject({
        topic,
        partition: 0,
        reason: expect.stringContaining("'bad'"),
      });
      expectSameRecord((await fresh.getMany(['good']))[0]!, state(1));
      expectSameRecord((await fresh.getMany(['after']))[0]!, state(3));
      // The checkpoint is past the garbage: the next restore reads nothing, and does not stall.
      expect(await fresh.checkpoint(0)).toBe(BigInt(badOffset) + 4n);
      expect((await fresh.restore([0], reader))[0]!.records).toBe(0);

      const events = [
        at(1, { key: 'bad', ts: 1, features: [1, 0, 0] }),
        at(2, { key: 'good', ts: 2, features: [0, 1, 0] }),
      ];
      const kinds = (outcomes: readonly Outcome[]) =>
        outcomes.map((o) =>
          o.kind === 'rejected'
            ? o.code
            : o.kind === 'prediction'
              ? `${o.prediction.key} ${o.prediction.seq}`
              : o.kind,
        );
      // Under 'refuse' the key's events are refused, its state unknown; the others go on.
      const refusing = new KeyedStepper({ model, store: fresh, kernel: referenceKernel, emit: () => {} });
      const refused = await refusing.process(events);
      expect(kinds(refused)).toEqual(['STATE_CORRUPT', `good ${state(1).seq + 1}`]);
      expect(refused[0]).toMatchObject({
        reason: expect.stringContaining(`${topic} partition 0 offset ${badOffset}`),
      });
      // Under 'reset' the key starts afresh, reported, and its new state goes to the changelog.
      const resetting = new KeyedStepper({
        model,
        store: fresh,
        kernel: referenceKernel,
        onModelMismatch: 'reset',
      });
      expect(kinds(await resetting.process(events.slice(0, 1)))).toEqual(['state-reset', 'bad 1']);
      const rebuilt = await open();
      await rebuilt.restore([0], reader);
      expect((await rebuilt.getMany(['bad']))[0]).toMatchObject({ seq: 1, fingerprint });
      for (const s of [writer, fresh, rebuilt]) await s.close();
    } finally {
      await close();
    }
  });
});

describe('ChangelogReader stopped', () => {
  const membersOf = (groupId: string) =>
    withAdmin(async (admin) => (await admin.describeGroups([groupId])).groups[0].members.length);

  it('while it was still connecting: the start fails, and no consumer of it stays in its group', async () => {
    const { topic } = await kafkaSide();
    const groupId = topicsFor('reader-stop').groupId;
    const reader = new ChangelogReader(await testClient(), { topic, groupId });
    const starting = reader.start();
    await reader.stop();
    await expect(starting).rejects.toThrow('the changelog reader was stopped');
    // A consumer left running would have joined by now (its start went on past the connect).
    await new Promise((r) => setTimeout(r, 1000));
    expect(await membersOf(groupId)).toBe(0);
  });

  it('refuses to start again, and a read after stop fails instead of connecting', async () => {
    const { topic } = await kafkaSide();
    const groupId = topicsFor('reader-restart').groupId;
    const reader = new ChangelogReader(await testClient(), { topic, groupId });
    await reader.start();
    expect(await membersOf(groupId)).toBe(1);
    await reader.stop();
    await expect(reader.start()).rejects.toThrow('the changelog reader was stopped');
    await expect(reader.read(0, 0n, 10n, async () => {})).rejects.toThrow('the changelog reader was stopped');
    expect(await membersOf(groupId)).toBe(0);
  });
});
