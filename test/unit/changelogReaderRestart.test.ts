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

describe('ChangelogReader read whose seek fails', () => {
  it('fails that read, and a later read of the partition is not refused as "already being read"', async () => {
    let seekFailures = 1;
    const consumer = {
      listen: () => {},
      connect: async () => {},
      subscribe: async () => {},
      run: async () => {},
      pause: () => {},
      resume: () => {},
      seek: () => {
        if (seekFailures-- > 0) throw new Error('broker on fire');
      },
    };
    const kafka = {
      consumer: () => consumer,
      admin: () => ({ connect: async () => {}, disconnect: async () => {} }),
    } as unknown as KafkaClient;
    const reader = new ChangelogReader(kafka, { topic: 't' });
    await expect(reader.read(0, 0n, 10n, async () => {})).rejects.toThrow('broker on fire');
    // The second read is registered and sought; stopping the reader ends it.
    const second = reader.read(0, 0n, 10n, async () => {});
    await new Promise((r) => setTimeout(r, 10));
    expect(reader.progress(0)).toEqual({ next: 0n, high: undefined });
    await reader.stop();
    await expect(second).rejects.toThrow('the changelog reader was stopped');
  });
});
