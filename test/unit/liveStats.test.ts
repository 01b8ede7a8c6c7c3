import { describe, expect, it } from 'vitest';
import { LiveStats } from '../../src/server/liveStats.js';

describe('LiveStats', () => {
  it('reports engine batches apart from end-to-end latency: median, p95 and events per batch', () => {
    const stats = new LiveStats(() => 0);
    expect(stats.snapshot().batch).toBeNull();
    // 19 batches of 10 events at 0.2 ms, one of 30 events at 8 ms (an fsync that took long).
    for (let i = 0; i < 19; i++) stats.batch(10, 0.0002);
    stats.batch(30, 0.008);
    stats.prediction(0.004);
    const snapshot = stats.snapshot();
    expect(snapshot.batch).toEqual({ ms: { p50: 0.2, p95: 8 }, eventsPerBatch: 11 });
    expect(snapshot.latencyMs).toEqual({ p50: 4, p95: 4, p99: 4 });
  });

  it('keeps only the latest 256 batches', () => {
    const stats = new LiveStats(() => 0);
    for (let i = 0; i < 256; i++) stats.batch(1, 1);
    for (let i = 0; i < 256; i++) stats.batch(4, 0.001);
    expect(stats.snapshot().batch).toEqual({ ms: { p50: 1, p95: 1 }, eventsPerBatch: 4 });
  });
});
