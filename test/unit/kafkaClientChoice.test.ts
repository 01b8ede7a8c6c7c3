// Exactly-once on @platformatic/kafka stalls with two or more instances (docs/kafka.md): the
// choice is refused at start-up with CONFIG_INVALID, from the config and from the pipeline itself,
// before anything connects. The broker address below answers nothing, so a start that got as far
// as connecting would fail with another error (or hang), not this one.
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { exactlyOnceUnsupported, KAFKA_CLIENTS } from '../../src/kafka/adapter.js';
import { startKafkaPipeline } from '../../src/pipelines/kafkaPipeline.js';
import { tempDir } from '../helpers/fixtures.js';
import { loadTestModel } from '../helpers/kafka.js';

const kafka = {
  brokers: ['127.0.0.1:1'],
  inputTopic: 'events',
  outputTopic: 'predictions',
  groupId: 'scoring',
};

/** `kafka` plus `extra` as command-line flags (dotted config paths). */
const flags = (extra: Record<string, unknown> = {}) =>
  Object.fromEntries(Object.entries({ ...kafka, ...extra }).map(([k, v]) => [`kafka.${k}`, v]));

async function refusal(work: Promise<unknown>): Promise<ConfigError> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).code).toBe('CONFIG_INVALID');
  return err as ConfigError;
}

describe('kafka.client and exactly-once', () => {
  it('only @platformatic/kafka is refused exactly-once, and the reason says what to use and why', () => {
    expect(KAFKA_CLIENTS.filter((c) => exactlyOnceUnsupported(c) !== undefined)).toEqual(['platformatic']);
    const why = exactlyOnceUnsupported('platformatic')!;
    expect(why).toMatch(/use kafka\.client kafkajs/i);
    expect(why).toMatch(/two or more instances/);
  });

  it('the config refuses platformatic with exactlyOnce, naming kafka.client, from flags or the environment', async () => {
    const fromFlags = await refusal(
      loadConfig({
        flags: flags({ client: 'platformatic', exactlyOnce: true }),
      }),
    );
    expect(fromFlags.message).toMatch(
      /kafka\.client.*cannot run kafka\.exactlyOnce.*Use kafka\.client kafkajs/,
    );

    const env = await refusal(
      loadConfig({
        flags: flags(),
        env: { CELLSTREAM_KAFKA_CLIENT: 'platformatic', CELLSTREAM_KAFKA_EXACTLY_ONCE: 'true' },
      }),
    );
    expect(env.message).toMatch(/kafka\.client.*cannot run kafka\.exactlyOnce/);
  });

  it('the config takes platformatic at-least-once, and kafkajs exactly-once', async () => {
    const alo = await loadConfig({ flags: flags({ client: 'platformatic' }) });
    expect(alo.kafka).toMatchObject({ client: 'platformatic', exactlyOnce: false });
    const eos = await loadConfig({ flags: flags({ exactlyOnce: true }) });
    expect(eos.kafka).toMatchObject({ client: 'kafkajs', exactlyOnce: true });
  });

  it('startKafkaPipeline refuses platformatic with exactlyOnce before connecting', async () => {
    const err = await refusal(
      startKafkaPipeline({
        ...kafka,
        model: await loadTestModel(),
        deadLetterTopic: 'events-dead-letter',
        stateDir: await tempDir('eos-refused'),
        exactlyOnce: true,
        client: 'platformatic',
        logLevel: 'nothing',
      }),
    );
    expect(err.message).toMatch(/Use kafka\.client kafkajs \(the default\) for exactly-once/);
  });
});
