// ChangelogStore against a real broker: the shared StateStore contract, and restores of a fresh
// or stale local store from the changelog. Fails (never skips) without a broker.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Message, Partitioners, type Producer } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import type { KafkaSender } from '../../src/sinks/kafkaSink.js';
import { ChangelogReader } from '../../src/state/changelogReader.js';
import { ChangelogStore, MAX_QUEUED_LOCAL_WRITES } from '../../src/state/changelogStore.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import type { StateRecord, StateStore } from '../../src/state/types.js';
import { createTopic, requireBroker, testKafka, topicsFor, withAdmin } from '../helpers/kafka.js';
import { expectSameRecord, makeRecord } from './records.js';
import { describeStateStoreContract } from './storeContract.js';

const PARTITIONS = 3;
let shared: Promise<{ topic: string; producer: Producer }> | undefined;
/** One changelog topic and producer for the file, made by the first test that needs them. */
function kafkaSide() {
  shared ??= (async () => {
    await requireBroker();
    const { changelogTopic: topic } = topicsFor('changelog-store');
    await createTopic(topic, PARTITIONS);
    const producer = testKafka().producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
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
    const kafka = testKafka();
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
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

/** A real LMDB store whose record writes wait for `step()` (one each) while gated, or fail while `failing`. */
class GatedStore implements StateStore {
  gated = false;
  failing = false;
  /** The buffers `putEncoded` was given, by key. */
  readonly encoded = new Map<string, Buffer>();
  private waiting: Array<() => void> = [];

  constructor(readonly inner: LmdbStore) {}

  /** Lets one gated write through; resolves once one was waiting. */
  async step(): Promise<void> {
    while (this.waiting.length === 0) await new Promise((r) => setTimeout(r, 5));
    this.waiting.shift()?.();
  }

  private async gate(): Promise<void> {
    if (this.gated) await new Promise<void>((r) => this.waiting.push(r));
    if (this.failing) throw new Error('disk full (test)');
  }

  getMany(keys: readonly string[]) {
    return this.inner.getMany(keys);
  }
  async putMany(entries: ReadonlyArray<readonly [string, StateRecord]>) {
    await this.gate();
    await this.inner.putMany(entries);
  }
  async putEncoded(entries: ReadonlyArray<readonly [string, Buffer]>) {
    await this.gate();
    for (const [key, bytes] of entries) this.encoded.set(key, bytes);
    await this.inner.putEncoded(entries);
  }
  deleteMany(keys: readonly string[]) {
    return this.inner.deleteMany(keys);
  }
  entries() {
    return this.inner.entries();
  }
  size() {
    return this.inner.size();
  }
  close() {
    return this.inner.close();
  }
}

describe('ChangelogStore commit', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function gatedStore() {
    const { topic, producer } = await kafkaSide();
    const dir = await mkdtemp(join(tmpdir(), 'cellstream-commit-'));
    dirs.push(dir);
    const local = new GatedStore(await LmdbStore.open({ path: dir }));
    const sent: Message[] = [];
    // The real producer, with what it is given kept for the test.
    const sender: KafkaSender = {
      sendBatch: (batch) => {
        for (const t of batch.topicMessages) sent.push(...t.messages);
        return producer.sendBatch(batch);
      },
    };
    const store = new ChangelogStore({ local, topic, partitions: PARTITIONS, producer: sender });
    return { store, local, sent };
  }

  it('answers acknowledged state at once while LMDB takes it in order behind, with the bytes sent', async () => {
    const { store, local, sent } = await gatedStore();
    local.gated = true;
    const [r1, r2, r3, r4] = [1, 2, 3, 4].map((i) => makeRecord(i, 16));
    // Resolves on Kafka's acknowledgement alone: the local writes are all held at the gate.
    await store.commit({
      puts: [
        ['a', r1],
        ['b', r2],
      ],
      deletes: [],
    });
    await store.commit({ puts: [['a', r3]], deletes: ['b'] });
    await store.commit({ puts: [['b', r4]], deletes: [] });
    expect(await local.inner.getMany(['a', 'b'])).toEqual([undefined, undefined]);

    const expectLatest = async () => {
      const [a, b] = await store.getMany(['a', 'b']);
      expectSameRecord(a!, r3);
      expectSameRecord(b!, r4);
    };
    await expectLatest();
    // Each local write in turn: reads stay on the latest acknowledged state throughout, including
    // while the delete of `b` has reached LMDB and the put after it has not.
    for (let i = 0; i < 3; i++) {
      await local.step();
      await expectLatest();
    }
    await store.flushLocal();
    const [a, b] = await local.inner.getMany(['a', 'b']);
    expectSameRecord(a!, r3);
    expectSameRecord(b!, r4);
    // Encoded once: LMDB got the very buffers the changelog was sent.
    const sentValue = (key: string) => sent.filter((m) => m.key === key && m.value !== null).at(-1)?.value;
    expect(local.encoded.get('a')).toBe(sentValue('a'));
    expect(local.encoded.get('b')).toBe(sentValue('b'));
    await store.close();
  });

  it('keeps what it was given when the caller reuses its arrays before the local write, as the engine does', async () => {
    const { store, local } = await gatedStore();
    local.gated = true;
    const given = makeRecord(5, 16, { lastOutput: Float32Array.of(0.5, 0.25) });
    const want = makeRecord(5, 16, { lastOutput: Float32Array.of(0.5, 0.25) });
    await store.commit({ puts: [['r', given]], deletes: [] });
    // The engine steps its next batch in the same buffers as soon as the write resolved.
    given.state.fill(-1);
    given.lastOutput?.fill(-1);
    const [r] = await store.getMany(['r']);
    expectSameRecord(r!, want);
    local.gated = false;
    await local.step();
    await store.flushLocal();
    const [lr] = await local.inner.getMany(['r']);
    expectSameRecord(lr!, want);
    await store.close();
  });

  it('holds the next send back while the local store is the bound of writes behind', async () => {
    const { store, local, sent } = await gatedStore();
    local.gated = true;
    for (let i = 0; i < MAX_QUEUED_LOCAL_WRITES; i++) {
      await store.commit({ puts: [[`q${i}`, makeRecord(i, 16)]], deletes: [] });
    }
    const before = sent.length;
    let done = false;
    const next = store.commit({ puts: [['q-next', makeRecord(99, 16)]], deletes: [] }).then(() => {
      done = true;
    });
    // All but the last queued write through: the queue has not caught up, so nothing was sent.
    for (let i = 0; i < MAX_QUEUED_LOCAL_WRITES - 1; i++) await local.step();
    expect(done).toBe(false);
    expect(sent.length).toBe(before);
    await local.step();
    await next;
    expect(sent.length).toBe(before + 1);
    await local.step();
    await store.flushLocal();
    expectSameRecord((await local.inner.getMany(['q-next']))[0]!, makeRecord(99, 16));
    await store.close();
  });

  it('retries a failed local write before sending anything else, and moves no checkpoint past it', async () => {
    const { store, local, sent } = await gatedStore();
    local.failing = true;
    await store.commit({ puts: [['x', makeRecord(10, 16)]], deletes: [] });
    await expect(store.flushLocal()).rejects.toThrow('disk full (test)');
    expectSameRecord((await store.getMany(['x']))[0]!, makeRecord(10, 16));

    const before = sent.length;
    await expect(store.commit({ puts: [['y', makeRecord(11, 16)]], deletes: [] })).rejects.toThrow(
      'disk full (test)',
    );
    expect(sent.length).toBe(before);

    local.failing = false;
    await store.commit({ puts: [['y', makeRecord(11, 16)]], deletes: [] });
    await store.flushLocal();
    const [x, y] = await local.inner.getMany(['x', 'y']);
    expectSameRecord(x!, makeRecord(10, 16));
    expectSameRecord(y!, makeRecord(11, 16));
    // The checkpoints LMDB holds are the changelog's ends: nothing acknowledged was skipped.
    const ends = await withAdmin((admin) => admin.fetchTopicOffsets(store.topic));
    for (const key of ['x', 'y']) {
      const p = store.partitionOf(key);
      expect(await store.checkpoint(p)).toBe(BigInt(ends.find((e) => e.partition === p)!.high));
    }
    await store.close();
  });
});
