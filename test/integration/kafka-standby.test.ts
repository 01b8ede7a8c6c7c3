// Standby state (kafka.standbys) against a real broker: a standby's copy of the partitions it does
// not own converges on the owner's state; after a SIGKILL of the owner the standby takes its
// partitions over restoring only the changelog's tail, and every prediction still matches the
// offline replay.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { KafkaHealthSnapshot } from '../../src/pipelines/kafkaHealth.js';
import { type KafkaPipeline, startKafkaPipeline } from '../../src/pipelines/kafkaPipeline.js';
import { ChangelogFollower } from '../../src/state/changelogFollower.js';
import { ChangelogReader } from '../../src/state/changelogReader.js';
import { ChangelogStore } from '../../src/state/changelogStore.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { encodeStateRecord } from '../../src/state/recordCodec.js';
import type { StateRecord } from '../../src/state/types.js';
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
  testClient,
  testKafka,
  waitForCatchUp,
  waitUntil,
  withAdmin,
} from '../helpers/kafka.js';
import { type ChildInstance, child } from '../helpers/kafkaFaults.js';

const PARTITIONS = 4;
const SESSION = { sessionTimeout: 6000, heartbeatInterval: 500 };

/** The changelog's end offset of each partition now. */
async function changelogEnds(t: Topics): Promise<Map<number, bigint>> {
  return withAdmin(async (admin) => {
    const offsets = await admin.fetchTopicOffsets(t.changelogTopic);
    return new Map(offsets.map((o) => [o.partition, BigInt(o.high)]));
  });
}

/**
 * Whether `snapshot`'s instance follows every partition it does not own (and none it owns), each
 * up to the changelog's end in `ends`.
 */
function standbyCaughtUp(snapshot: KafkaHealthSnapshot, ends: Map<number, bigint>): boolean {
  const owned = new Set(snapshot.partitions);
  const followed = new Set(snapshot.standbyPartitions);
  for (let p = 0; p < PARTITIONS; p++) {
    if (owned.has(p) === followed.has(p)) return false;
    if (!followed.has(p)) continue;
    const at = snapshot.standbyOffsets[String(p)];
    if (at === undefined || BigInt(at) < (ends.get(p) ?? 0n)) return false;
  }
  return true;
}

/** A state record whose every float is `value`. */
const record = (seq: number, value: number): StateRecord => ({
  seq,
  ts: 1_700_000_000_000 + seq,
  state: new Float32Array(8).fill(value),
  lastApplied: { kind: 'none' },
  fingerprint: 'standby-test',
});

describe('ChangelogFollower', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('applies puts and tombstones in offset order, never an aborted transaction, and stops writing a partition once unfollowed', {
    timeout: 120_000,
  }, async () => {
    await requireBroker();
    const topic = `standby-follower-${Math.random().toString(36).slice(2, 10)}`;
    await createTopic(topic, 2);
    const client = await testClient();
    const producer = client.producer();
    await producer.connect();
    const open = async () => {
      const path = await mkdtemp(join(tmpdir(), 'cellstream-follower-'));
      dirs.push(path);
      return LmdbStore.open({ path });
    };
    const owner = new ChangelogStore({ local: await open(), topic, partitions: 2, producer });
    const standby = new ChangelogStore({ local: await open(), topic, partitions: 2 });
    const reader = new ChangelogReader(client, { topic });
    const follower = new ChangelogFollower(standby, reader);
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
    const same = async () => {
      const [a, b] = [await owner.getMany(keys), await standby.getMany(keys)];
      const hex = (r: StateRecord | undefined) =>
        r ? Buffer.from(encodeStateRecord(r)).toString('hex') : '-';
      return keys.filter((_, i) => hex(a[i]) !== hex(b[i]));
    };
    const caughtUp = async (partitions: readonly number[]) => {
      const ends = await withAdmin(async (admin) => admin.fetchTopicOffsets(topic));
      const at = follower.positions();
      return partitions.every((p) => {
        const end = BigInt(ends.find((e) => e.partition === p)?.high ?? 0);
        return (at.get(p)?.next ?? -1n) >= end;
      });
    };
    try {
      // Several versions of each key, then deletes: only the last of each may remain.
      for (let v = 1; v <= 3; v++) await owner.putMany(keys.map((k, i) => [k, record(v, i + v / 10)]));
      await owner.deleteMany(keys.slice(0, 20));
      // A transaction that aborts, written straight with kafkajs: its records must never apply.
      const txProducer = testKafka().producer({
        transactionalId: `${topic}-tx`,
        idempotent: true,
        maxInFlightRequests: 1,
      });
      await txProducer.connect();
      const txn = await txProducer.transaction();
      await txn.send({
        topic,
        messages: keys
          .slice(20, 40)
          .map((k) => ({ key: k, value: Buffer.from(encodeStateRecord(record(99, -1))) })),
      });
      await txn.send({ topic, messages: keys.slice(40, 60).map((k) => ({ key: k, value: null })) });
      await txn.abort();
      await txProducer.disconnect();
      follower.follow([0, 1]);
      await waitUntil(() => caughtUp([0, 1]), 'the follower to reach the changelog end');
      expect(await same()).toEqual([]);
      expect((await standby.getMany(keys.slice(0, 20))).every((r) => r === undefined)).toBe(true);
      expect((await standby.getMany(['k30']))[0]?.seq).toBe(3);

      // Unfollowed: partition 0's copy stays as it was while partition 1's goes on.
      await follower.unfollow([0]);
      const mark = await standby.checkpoint(0);
      const inZero = keys.filter((k) => owner.partitionOf(k) === 0);
      const before = await standby.getMany(inZero);
      await owner.putMany(keys.map((k, i) => [k, record(4, i)]));
      await waitUntil(() => caughtUp([1]), 'partition 1 to be followed on');
      expect(await standby.checkpoint(0)).toBe(mark);
      expect(await standby.getMany(inZero)).toEqual(before);

      // Followed again from its checkpoint: the copy catches up with the owner.
      follower.follow([0]);
      await waitUntil(() => caughtUp([0, 1]), 'partition 0 to be followed again');
      expect(await same()).toEqual([]);
    } finally {
      await follower.stop();
      await reader.stop();
      await producer.disconnect();
      await owner.close();
      await standby.close();
    }
  });
});

describe.each(deliveryModes)('Kafka standby state ($mode)', ({ mode, exactlyOnce }) => {
  const dirs: string[] = [];
  const pipelines: KafkaPipeline[] = [];
  const children: ChildInstance[] = [];
  afterAll(async () => {
    for (const p of pipelines) await p.stop().catch(() => {});
    for (const c of children) if (c.exitCode() === undefined) await c.kill();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const dir = async () => {
    const d = await mkdtemp(join(tmpdir(), 'cellstream-standby-'));
    dirs.push(d);
    return d;
  };

  it("a standby's copy of the partitions it does not own becomes the owner's state", {
    timeout: 300_000,
  }, async () => {
    await requireBroker();
    const model = await loadTestModel();
    const t = await createInputTopic(`standby-${mode}`, PARTITIONS);
    const events = makeEvents(4000, 600, 31);
    const messages = eventMessages(events);
    const start = async () => {
      const p = await startKafkaPipeline({
        model,
        brokers,
        ...t,
        stateDir: await dir(),
        exactlyOnce,
        standbys: 1,
        maxBatch: 200,
        maxWaitTimeInMs: 100,
        ...SESSION,
        logLevel: 'nothing',
        client: kafkaClientUnderTest,
      });
      pipelines.push(p);
      return p;
    };
    const a = await start();
    await produce(t.inputTopic, messages.slice(0, 2000));
    const b = await start();
    await produce(t.inputTopic, messages.slice(2000));
    await waitForCatchUp(t, 240_000);
    // The group settled with both, and each follows the other's partitions to the changelog's end.
    await waitUntil(
      async () => {
        const ends = await changelogEnds(t);
        return [a, b].every(
          (p) =>
            p.joined() && p.partitions().length > 0 && standbyCaughtUp(p.health.snapshot(t.groupId), ends),
        );
      },
      'both standbys to reach the changelog end',
      120_000,
    );
    const keys = [...new Set(events.map((e) => e.key))];
    const bytes = (r: StateRecord | undefined) =>
      r ? Buffer.from(encodeStateRecord(r)).toString('hex') : 'none';
    let fromA: (StateRecord | undefined)[] = [];
    let differ: string[] = [];
    // Both copies converge on the same bytes for every key. Read once at the moment both reported
    // caught up, they differed once in CI (5 of 600 keys, @platformatic/kafka exactly-once, two
    // test files at a time on a loaded machine; not seen in runs alone): the owner's LMDB follows
    // its commit and the two reads are not one snapshot, so a moment's difference can be timing.
    // What a standby owes is to converge; a copy that stays apart fails here, naming its keys.
    await waitUntil(
      async () => {
        const [fa, fb] = await Promise.all([a.store.getMany(keys), b.store.getMany(keys)]);
        fromA = fa;
        differ = keys.filter((_, i) => bytes(fa[i]) !== bytes(fb[i]));
        return differ.length === 0;
      },
      "the standby copies to equal the owners' state",
      30_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; keys still apart: ${differ.slice(0, 20).join(', ')}`);
    });
    expect(differ).toEqual([]);
    // Every key is held by both: by its owner, and by the other as a standby.
    expect(fromA.filter((r) => r === undefined)).toHaveLength(0);
    expect(a.stats.standbyRecords + b.stats.standbyRecords).toBeGreaterThan(0);
    for (const p of [a, b]) await p.stop();
    const verdict = judge(await offlineReplay(model, events), await readTopic(t.outputTopic));
    expect(verdict).toMatchObject({ missing: 0, divergent: 0 });
    if (exactlyOnce) expect(verdict.repeated).toBe(0);
  });

  it('the owner SIGKILLed under load: the standby takes over restoring only the tail, 0 missing, 0 divergent', {
    timeout: 300_000,
  }, async () => {
    await requireBroker();
    const model = await loadTestModel();
    const t = await createInputTopic(`standby-kill-${mode}`, PARTITIONS);
    const events = makeEvents(6000, 2000, 37);
    const messages = eventMessages(events);
    const options = { ...SESSION, args: ['--standbys', '1'] };
    const a = await child(t, await dir(), exactlyOnce, options);
    children.push(a);
    const b = await child(t, await dir(), exactlyOnce, options);
    children.push(b);
    const snapshot = async (c: ChildInstance) =>
      (await (await fetch(`${c.http}/v1/kafka`)).json()) as KafkaHealthSnapshot;
    await produce(t.inputTopic, messages.slice(0, 4000));
    await waitForCatchUp(t, 240_000);
    await waitUntil(
      async () => {
        const ends = await changelogEnds(t);
        const both = [await snapshot(a), await snapshot(b)];
        return both.every((s) => s.partitions.length > 0 && standbyCaughtUp(s, ends));
      },
      'both standbys to reach the changelog end',
      120_000,
    );
    const taken = (await snapshot(a)).partitions;
    // Where the keys went, as the producer placed them.
    const input = await readTopic(t.inputTopic);
    const takenKeys = new Set(input.filter((m) => taken.includes(m.partition)).map((m) => m.key)).size;
    const allKeys = new Set(input.map((m) => m.key)).size;
    const before = await snapshot(b);
    // The standby copied the partitions it was to take over.
    expect(before.standbyRecords).toBeGreaterThanOrEqual(takenKeys);
    const logBefore = b.log().length;

    // Under load: part of the last third processed, then the owner of the other half dies. The
    // rest comes after the kill, so the partitions taken over have events to fetch (and restore
    // for) even when the owner had processed all it was sent.
    await produce(t.inputTopic, messages.slice(4000, 5500));
    const outputEnd = () =>
      withAdmin(async (admin) =>
        (await admin.fetchTopicOffsets(t.outputTopic)).reduce((n, p) => n + BigInt(p.high), 0n),
      );
    const ended = await outputEnd();
    await waitUntil(async () => (await outputEnd()) > ended, 'progress on the last third');
    await a.kill();
    await produce(t.inputTopic, messages.slice(5500));
    await waitUntil(
      async () => (await snapshot(b)).partitions.length === PARTITIONS,
      'the standby to take every partition over',
    );
    await waitForCatchUp(t, 240_000);
    await b.stop();

    const restores = b
      .log()
      .slice(logBefore)
      .split('\n')
      .filter((l) => l.includes('"event":"restored"'))
      .map((l) => JSON.parse(l) as { records: number });
    expect(restores.length).toBeGreaterThan(0);
    const restored = restores.reduce((n, r) => n + r.records, 0);
    // A restore without the standby reads every key of the partitions taken over (at least).
    expect(takenKeys).toBeGreaterThan(allKeys / 4);
    expect(restored).toBeLessThan(takenKeys / 10);

    const verdict = judge(await offlineReplay(model, events), await readTopic(t.outputTopic));
    expect(verdict).toMatchObject({ missing: 0, divergent: 0 });
    if (exactlyOnce) expect(verdict.repeated).toBe(0);
    expect(await readTopic(t.deadLetterTopic)).toHaveLength(0);
  });
});
