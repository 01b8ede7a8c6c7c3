// kafka.client and kafka.exactlyOnce go together in every combination: exactly-once runs on
// @platformatic/kafka as on kafkajs (it was refused while multi-instance exactly-once stalled
// there; docs/kafka.md says why it did). Config only: nothing here connects.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { KAFKA_CLIENTS } from '../../src/kafka/adapter.js';

const kafka = {
  brokers: ['127.0.0.1:1'],
  inputTopic: 'events',
  outputTopic: 'predictions',
  groupId: 'scoring',
};

/** `kafka` plus `extra` as command-line flags (dotted config paths). */
const flags = (extra: Record<string, unknown> = {}) =>
  Object.fromEntries(Object.entries({ ...kafka, ...extra }).map(([k, v]) => [`kafka.${k}`, v]));

describe('kafka.client and exactly-once', () => {
  it.for(KAFKA_CLIENTS)('the config takes %s in both delivery modes, from flags', async (client) => {
    for (const exactlyOnce of [false, true]) {
      const config = await loadConfig({ flags: flags({ client, exactlyOnce }) });
      expect(config.kafka).toMatchObject({ client, exactlyOnce });
    }
  });

  it('the config takes platformatic with exactly-once from the environment', async () => {
    const config = await loadConfig({
      flags: flags(),
      env: { CELLSTREAM_KAFKA_CLIENT: 'platformatic', CELLSTREAM_KAFKA_EXACTLY_ONCE: 'true' },
    });
    expect(config.kafka).toMatchObject({ client: 'platformatic', exactlyOnce: true });
  });

  it('the default client is kafkajs, at-least-once', async () => {
    const config = await loadConfig({ flags: flags() });
    expect(config.kafka).toMatchObject({ client: 'kafkajs', exactlyOnce: false });
  });
});
