import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import type { KafkaHealthSnapshot } from '../../src/pipelines/kafkaHealth.js';
import { checkWorkers, KAFKA_WORKERS, standbyOfInstance } from '../../src/pipelines/kafkaWorkers.js';

describe('kafka workers', () => {
  it('takes an integer from 1 to 64, default 1; anything else is CONFIG_INVALID saying the range', () => {
    expect(KAFKA_WORKERS.default).toBe(1);
    expect(checkWorkers(1)).toBe(1);
    expect(checkWorkers(64)).toBe(64);
    for (const bad of [0, 65, 1.5, -1, Number.NaN]) {
      expect(() => checkWorkers(bad)).toThrow(ConfigError);
      expect(() => checkWorkers(bad)).toThrow(/integer from 1 to 64/);
    }
  });

  it("reports as standby only partitions no worker owns, each with its worst worker's copy", () => {
    const worker = (
      standbyPartitions: number[],
      standbyLag: Record<string, number>,
      standbyOffsets: Record<string, string>,
      standbyRecords: number,
    ) =>
      ({ standbyPartitions, standbyLag, standbyOffsets, standbyRecords }) as unknown as KafkaHealthSnapshot;
    // Worker 0 owns 0 and 1, worker 1 owns 2; each follows the rest, its sibling's included.
    const view = standbyOfInstance(
      [
        worker([2, 3], { 2: 0, 3: 5 }, { 2: '90', 3: '40' }, 100),
        worker([0, 1, 3], { 0: 1, 1: 0, 3: 2 }, { 0: '10', 1: '20', 3: '43' }, 30),
      ],
      [0, 1, 2],
    );
    expect(view).toEqual({
      standbyPartitions: [3],
      standbyLag: { 3: 5 },
      standbyOffsets: { 3: '40' },
      standbyRecords: 130,
    });
  });
});
