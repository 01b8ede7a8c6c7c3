import { describe, expect, it } from 'vitest';
import type { ConsumerOptions, KafkaClient } from '../../src/kafka/adapter.js';
import { ChangelogReader } from '../../src/state/changelogReader.js';

/**
 * A stand-in for the Kafka adapter whose consumer throws like kafkajs's does while it rebuilds its
 * group after a crash in joining; only the calls `start()` makes exist. (The real broker paths are
 * covered by test/state/changelogStore.test.ts.)
 */
function fakeKafka(
  pauseFailures: number,
  error = 'Consumer group was not initialized, consumer#run must be called first',
) {
  const calls = { pause: 0, configs: [] as ConsumerOptions[] };
  const consumer = {
    listen: () => {},
    connect: async () => {},
    subscribe: async () => {},
    run: async () => {},
    pause: () => {
      calls.pause++;
      if (calls.pause <= pauseFailures) throw new Error(error);
    },
  };
  const kafka = {
    consumer: (config: ConsumerOptions) => {
      calls.configs.push(config);
      return consumer;
    },
    admin: () => ({ connect: async () => {} }),
  } as unknown as KafkaClient;
  return { kafka, calls };
}

describe('ChangelogReader while kafkajs restarts its consumer group', () => {
  it('waits for the group instead of failing the restore', async () => {
    const { kafka, calls } = fakeKafka(3);
    await new ChangelogReader(kafka, { topic: 't' }).start();
    expect(calls.pause).toBe(4);
  });

  it('still fails on any other error', async () => {
    const { kafka } = fakeKafka(1, 'broker on fire');
    await expect(new ChangelogReader(kafka, { topic: 't' }).start()).rejects.toThrow('broker on fire');
  });
});

describe('ChangelogReader session', () => {
  // kafkajs restarts a crashed consumer as a new member; a restarted broker holds its join until
  // the old member's session expires, and restores wait for the join.
  it("joins with the session timeout and heartbeat it is given, not kafkajs's 30 s default", () => {
    const { kafka, calls } = fakeKafka(0);
    new ChangelogReader(kafka, { topic: 't', sessionTimeout: 6000, heartbeatInterval: 500 });
    expect(calls.configs[0]).toMatchObject({ sessionTimeout: 6000, heartbeatInterval: 500 });
  });
});

describe('ChangelogReader and batches its eachBatch passed over', () => {
  // kafkajs tells every batch's end (END_BATCH_PROCESS), also of one eachBatch returned from
  // without reading: no read registered yet, or a batch fetched before the seek. A read registered
  // meanwhile took that end for its own and finished with nothing applied: a restore that rebuilt
  // a partition read 0 records and checkpointed it as complete (seen under load, SIGKILL faults).
  it('counts only what it applied, and the ends of control-only batches', async () => {
    let listeners: { batchEnd?: (t: string, p: number, next: bigint) => void } = {};
    let eachBatch!: (ctx: unknown) => Promise<void>;
    const consumer = {
      listen: (l: typeof listeners) => {
        listeners = l;
      },
      connect: async () => {},
      subscribe: async () => {},
      run: async (o: { eachBatch: typeof eachBatch }) => {
        eachBatch = o.eachBatch;
      },
      pause: () => {},
      resume: () => {},
      seek: () => {},
    };
    const kafka = {
      consumer: () => consumer,
      admin: () => ({ connect: async () => {} }),
    } as unknown as KafkaClient;
    const reader = new ChangelogReader(kafka, { topic: 't' });
    await reader.start();
    const batch = (from: number, to: number, stale = false) => ({
      batch: {
        topic: 't',
        partition: 4,
        highWatermark: '10',
        messages: Array.from({ length: to - from }, (_, i) => ({
          offset: String(from + i),
          key: Buffer.from(`k${from + i}`),
          value: Buffer.from('v'),
        })),
        lastOffset: () => String(to - 1),
      },
      isStale: () => stale,
    });

    // A batch of offsets 0–9 reaches eachBatch before the read is registered ...
    await eachBatch(batch(0, 10));
    const applied: string[] = [];
    let done = false;
    const read = reader
      .read(4, 0n, 10n, async (entries) => {
        applied.push(...entries.map((e) => e.key));
      })
      .then(() => {
        done = true;
      });
    await new Promise((r) => setTimeout(r, 10));
    // ... and its end is told after: the read must not count it.
    listeners.batchEnd?.('t', 4, 10n);
    await new Promise((r) => setTimeout(r, 10));
    expect(done).toBe(false);
    // A stale batch is passed over the same way.
    await eachBatch(batch(0, 10, true));
    listeners.batchEnd?.('t', 4, 10n);
    await new Promise((r) => setTimeout(r, 10));
    expect(done).toBe(false);

    // The seek's own fetch: read and applied, then done.
    await eachBatch(batch(0, 8));
    listeners.batchEnd?.('t', 4, 8n);
    expect(applied).toHaveLength(8);
    expect(done).toBe(false);
    // Control records only (a transaction marker at 8, 9): they never reach eachBatch.
    listeners.batchEnd?.('t', 4, 10n);
    await read;
    expect(applied).toEqual(Array.from({ length: 8 }, (_, i) => `k${i}`));
  });
});
