// ChangelogStore against a real broker: the shared StateStore contract, and restores of a fresh
// or stale local store from the changelog. Fails (never skips) without a broker.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { KafkaProducer } from '../../src/kafka/adapter.js';
import { ChangelogReader } from '../../src/state/changelogReader.js';
import { ChangelogStore } from '../../src/state/changelogStore.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { createTopic, requireBroker, testClient, topicsFor, withAdmin } from '../helpers/kafka.js';
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
    await requireBroker();
    const { changelogTopic: topic } = topicsFor('restore');
    await createTopic(topic, PARTITIONS);
    const kafka = await testClient();
    const producer = kafka.producer();
    await producer.connect();
    const reader = new ChangelogReader(kafka, { topic });
    const dirs: string[] = [];
    const open = async () => {
      const dir = await mkdtemp(join(tmpdir(), 'cellstream-restore-'));
      dirs.push(dir);
      return new ChangelogStore({
        local: await LmdbStore.open({ path: dir }),
        topic,
        partitions: PARTITIONS,
        producer,
      });
    };
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
      await reader.stop();
      await producer.disconnect();
      for (const d of dirs) await rm(d, { recursive: true, force: true });
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
