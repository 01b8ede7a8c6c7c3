// The standby follower's bookkeeping with a reader double (the reader itself is tested against a
// real broker in kafka-standby.test.ts): a partition followed again while its `unfollow` is still
// winding down.
import { describe, expect, it } from 'vitest';
import { ChangelogFollower } from '../../src/state/changelogFollower.js';
import type { ChangelogReader } from '../../src/state/changelogReader.js';
import type { ChangelogStore } from '../../src/state/changelogStore.js';

/** A reader whose follows run until cancelled; `cancel` takes a turn, as the real one awaits its apply. */
function readerDouble() {
  const follows: number[] = [];
  const running = new Map<number, () => void>();
  const reader = {
    bounds: async () => new Map([[0, { low: 0n, high: 10n }]]),
    follow: (partition: number) => {
      follows.push(partition);
      return new Promise<void>((done) => running.set(partition, done));
    },
    cancel: async (partition: number) => {
      await new Promise((r) => setTimeout(r, 5));
      running.get(partition)?.();
      running.delete(partition);
    },
    progress: () => undefined,
  };
  return { reader: reader as unknown as ChangelogReader, follows, running };
}

const store = { topic: 'changelog', startOf: async () => ({ from: 0n }) } as unknown as ChangelogStore;
const turn = () => new Promise((r) => setTimeout(r, 20));

describe('ChangelogFollower', () => {
  it('ends an unfollow that a follow of the same partition overtook, and follows the partition again after it', async () => {
    const { reader, follows, running } = readerDouble();
    const follower = new ChangelogFollower(store, reader);
    follower.follow([0]);
    await turn();
    expect(follows).toEqual([0]);
    const unfollowed = follower.unfollow([0]);
    // Wanted again before the unfollow has finished cancelling the read.
    follower.follow([0]);
    const outcome = await Promise.race([unfollowed.then(() => 'ended'), turn().then(() => 'still waiting')]);
    expect(outcome).toBe('ended');
    await turn();
    // The old read ended; a new one follows the partition.
    expect(follows).toEqual([0, 0]);
    expect(running.has(0)).toBe(true);
    expect(follower.partitions).toEqual([0]);
    await follower.stop();
    expect(running.size).toBe(0);
  });
});
