// KafkaHealth's logic on a manual clock: readiness and its reasons, stall detection reported once
// per episode, lag bookkeeping across rebalances, and the observer counts.
import { describe, expect, it } from 'vitest';
import { KafkaHealth } from '../../src/pipelines/kafkaHealth.js';

function health(stallTimeoutMs = 60_000) {
  let now = 1_000_000;
  const stalls: string[] = [];
  let recovered = 0;
  const h = new KafkaHealth({
    stallTimeoutMs,
    brokerTimeoutMs: 10_000,
    now: () => now,
    onStall: (m) => stalls.push(m),
    onRecover: () => recovered++,
  });
  return {
    h,
    stalls,
    recovered: () => recovered,
    advance(ms: number) {
      now += ms;
      h.check();
    },
  };
}

describe('KafkaHealth', () => {
  it('is not ready before joining, while restoring, and ready once restored and in the group', () => {
    const { h } = health();
    expect(h.notReadyReason('g')).toMatch(/not a member of the Kafka consumer group 'g'/);
    h.joined([0, 1]);
    h.restoreStarted();
    expect(h.notReadyReason('g')).toMatch(/restoring/);
    h.restoreFinished(0.5, 10);
    expect(h.notReadyReason('g')).toBeUndefined();
    expect(h.snapshot('g')).toMatchObject({
      ready: true,
      partitions: [0, 1],
      restores: 1,
      lastRestoreSeconds: 0.5,
    });
  });

  it('reports a stall once when nothing commits while events wait, and its end once', () => {
    const t = health(60_000);
    t.h.joined([0]);
    t.h.lag(0, 500n);
    t.advance(59_000);
    expect(t.h.stalled()).toBe(false);
    t.h.brokerContact();
    t.advance(2000);
    t.h.brokerContact();
    expect(t.h.stalled()).toBe(true);
    expect(t.h.notReadyReason('g')).toMatch(
      /^stalled: no batch committed for 61 s while 500 events are waiting/,
    );
    t.advance(1000);
    t.h.brokerContact();
    t.advance(1000);
    expect(t.stalls).toHaveLength(1);
    expect(t.stalls[0]).toMatch(/restart this process/);
    t.h.committed(0, 100n);
    expect(t.recovered()).toBe(1);
    expect(t.h.notReadyReason('g')).toBeUndefined();
    expect(t.h.snapshot('g')).toMatchObject({ totalLag: 100, secondsSinceLastCommit: 0 });
  });

  it('does not call an idle instance (lag 0, fetching) stalled, but one out of its group is', () => {
    const t = health(5000);
    t.h.joined([0]);
    t.h.committed(0, 0n);
    for (let i = 0; i < 10; i++) {
      t.advance(1000);
      t.h.brokerContact();
      t.h.fetched();
    }
    expect(t.h.stalled()).toBe(false);
    t.h.crashed(false);
    t.advance(6000);
    expect(t.h.stalled()).toBe(true);
    expect(t.stalls).toHaveLength(1);
    expect(t.stalls[0]).toMatch(/not in its group/);
  });

  it('is a member again after a crash retried in place, keeping its partitions, without a rebalance', () => {
    const t = health();
    const seen: string[] = [];
    t.h.observe({ rebalance: () => seen.push('rebalance'), crash: (r) => seen.push(`crash ${r}`) });
    t.h.joined([0, 1]);
    t.h.crashed(true);
    expect(t.h.notReadyReason('g')).toMatch(/not a member of the Kafka consumer group 'g'/);
    t.h.resumed();
    expect(t.h.notReadyReason('g')).toBeUndefined();
    expect(t.h.snapshot('g')).toMatchObject({ member: true, partitions: [0, 1], rebalances: 1, crashes: 1 });
    expect(seen).toEqual(['rebalance', 'crash true']);
    // A lost consumer stays lost.
    t.h.lost('gave up: restart the process');
    t.h.resumed();
    expect(t.h.notReadyReason('g')).toBe('gave up: restart the process');
  });

  it('says when the broker has not answered for longer than the broker timeout', () => {
    const t = health();
    t.h.joined([0]);
    t.advance(11_000);
    expect(t.h.notReadyReason('g')).toMatch(/no answer from the Kafka broker for over 10 s/);
    t.h.brokerContact();
    expect(t.h.notReadyReason('g')).toBeUndefined();
  });

  it('forgets the lag of partitions it no longer owns, and a lost consumer is never ready again', () => {
    const t = health();
    t.h.joined([0, 1]);
    t.h.lag(0, 5n);
    t.h.lag(1, 7n);
    t.h.revoked([0]);
    expect(t.h.totalLag()).toBe(7n);
    // A rebalance makes every lag unknown until the partition's next fetch.
    t.h.joined([1]);
    expect(t.h.totalLag()).toBe(0n);
    t.h.lost('gave up: restart the process');
    t.h.joined([0]);
    expect(t.h.notReadyReason('g')).toBe('gave up: restart the process');
  });

  it('shows the lag measured at the assignment until a fetch reports one, never as a stall, and drops a measurement of an earlier join', () => {
    const t = health(60_000);
    t.h.joined([0, 1, 2]);
    const first = t.h.generation();
    t.h.lag(2, 4n);
    t.h.lagAtAssignment(first, 0, 0n);
    t.h.lagAtAssignment(first, 1, 1n);
    // A fetch's figure is newer than the assignment's: it stays.
    t.h.lagAtAssignment(first, 2, 9n);
    // Not owned: ignored.
    t.h.lagAtAssignment(first, 3, 5n);
    expect(t.h.snapshot('g').lag).toEqual({ '0': 0, '1': 1, '2': 4 });
    // Only fetched lag counts towards a stall (a trailing transaction marker would never clear).
    expect(t.h.totalLag()).toBe(4n);
    t.h.lag(2, 0n);
    t.h.fetched();
    t.advance(61_000);
    t.h.brokerContact();
    expect(t.h.stalled()).toBe(false);
    // The next fetch replaces it.
    t.h.lag(1, 3n);
    expect(t.h.snapshot('g').lag).toEqual({ '0': 0, '1': 3, '2': 0 });
    // Revoked: gone. A later join: the earlier join's late measurement is dropped.
    t.h.revoked([0]);
    expect(t.h.snapshot('g').lag).toEqual({ '1': 3, '2': 0 });
    t.h.joined([0, 1]);
    t.h.lagAtAssignment(first, 0, 7n);
    expect(t.h.snapshot('g').lag).toEqual({});
    t.h.lagAtAssignment(t.h.generation(), 0, -2n);
    expect(t.h.snapshot('g').lag).toEqual({ '0': 0 });
  });

  it('tells its observers of rebalances, crashes, rejoins, restores and resyncs', () => {
    const { h } = health();
    const seen: string[] = [];
    h.observe({
      rebalance: () => seen.push('rebalance'),
      crash: (restart) => seen.push(`crash ${restart}`),
      rejoin: () => seen.push('rejoin'),
      restore: (s, n) => seen.push(`restore ${s} ${n}`),
      resync: () => seen.push('resync'),
    });
    h.joined([0]);
    h.crashed(true);
    h.crashed(false);
    h.rejoining();
    h.restoreFinished(2, 30);
    h.resynced();
    expect(seen).toEqual(['rebalance', 'crash true', 'crash false', 'rejoin', 'restore 2 30', 'resync']);
    expect(h.snapshot('g')).toMatchObject({ rebalances: 1, crashes: 2, rejoins: 1, restores: 1, resyncs: 1 });
  });
});
