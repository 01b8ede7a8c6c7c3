import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { checkWorkers, KAFKA_WORKERS } from '../../src/pipelines/kafkaWorkers.js';

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
});
