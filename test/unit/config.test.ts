import { readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ENV_VARIABLES } from '../../src/config/env.js';
import { loadConfig } from '../../src/config/load.js';
import { type Config, DEMO_EVENTS, DEMO_MODEL } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { checkExposure, isLoopback } from '../../src/server/auth.js';
import { tempDir } from '../helpers/fixtures.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

async function yamlFile(text: string): Promise<string> {
  const path = join(await tempDir('config'), 'cellstream.yaml');
  await writeFile(path, text);
  return path;
}

/** The message of the ConfigError `work` throws. */
async function configError(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('CONFIG_INVALID');
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('serve configuration', () => {
  it('has a default for every key: the demo model on 127.0.0.1:8080 with LMDB state under ./.data/state', async () => {
    const config = await loadConfig();
    expect(config.model.path).toBe(DEMO_MODEL);
    expect(config.server).toMatchObject({ host: '127.0.0.1', port: 8080, allowInsecure: false });
    expect(config.state).toMatchObject({ store: 'lmdb', path: './.data/state' });
    expect(config.sources.websocket.maxPayload).toBe(65536);
    expect(config.sources.demo).toMatchObject({ enabled: false, file: DEMO_EVENTS });
    expect(config.sinks.websocket).toMatchObject({ onSlow: 'drop', maxBufferedBytes: 1048576 });
    expect(config.auth.tokens).toEqual([]);
  });

  it('config/default.yaml spells out exactly the built-in defaults', async () => {
    const fromFile = await loadConfig({ file: join(root, 'config', 'default.yaml') });
    const builtIn = await loadConfig();
    const resolvePaths = (c: Config) => ({
      ...c,
      model: { ...c.model, path: resolve(root, c.model.path) },
      sources: { ...c.sources, demo: { ...c.sources.demo, file: resolve(root, c.sources.demo.file) } },
    });
    expect(resolvePaths(fromFile)).toEqual(resolvePaths(builtIn));
  });

  it('every example in config/examples/ is valid', async () => {
    const dir = join(root, 'config', 'examples');
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(3);
    for (const f of files) await expect(loadConfig({ file: join(dir, f) })).resolves.toBeDefined();
  });

  it('layers file < environment < flags, key by key', async () => {
    const file = await yamlFile('server:\n  port: 9000\n  host: 127.0.0.2\nmodel:\n  path: from-file.onnx\n');
    const config = await loadConfig({
      file,
      env: { CELLSTREAM_PORT: '9100', CELLSTREAM_MODEL: 'from-env.onnx', CELLSTREAM_DEMO_FEED: 'yes' },
      flags: { 'model.path': 'from-flag.onnx', 'server.port': undefined },
    });
    expect(config.server.port).toBe(9100);
    expect(config.server.host).toBe('127.0.0.2');
    expect(config.model.path).toBe('from-flag.onnx');
    expect(config.sources.demo.enabled).toBe(true);
  });

  it('reads the file named by CELLSTREAM_CONFIG', async () => {
    const file = await yamlFile('server:\n  port: 9200\n');
    expect((await loadConfig({ env: { CELLSTREAM_CONFIG: file } })).server.port).toBe(9200);
  });

  it('names the bad key, where it came from and what is allowed', async () => {
    const file = await yamlFile('server:\n  port: 70000\nsinks:\n  websocket:\n    onSlow: wait\n');
    const message = await configError(loadConfig({ file }));
    expect(message).toMatch(new RegExp(`server\\.port \\(from ${file}\\): .*<=65535`));
    expect(message).toMatch(/sinks\.websocket\.onSlow .*expected one of "drop"\|"close"/);

    expect(await configError(loadConfig({ env: { CELLSTREAM_PORT: 'eighty' } }))).toMatch(
      /CELLSTREAM_PORT: expected an integer, got 'eighty'/,
    );
    expect(await configError(loadConfig({ env: { CELLSTREAM_STATE_STORE: 'redis' } }))).toMatch(
      /state\.store \(from CELLSTREAM_STATE_STORE\): .*"lmdb"\|"memory"/,
    );
    expect(await configError(loadConfig({ flags: { 'server.port': -1 } }))).toMatch(
      /server\.port \(from flag for server\.port\): .*>=0/,
    );
  });

  it('takes at most 32 models, counting model and model.shadow beside models', async () => {
    const entries = (n: number, role = 'shadow') =>
      Array.from(
        { length: n },
        (_, i) => `  - {name: m${i}, path: m${i}.json, role: ${i === 0 ? role : 'shadow'}}`,
      ).join('\n');
    // model + model.shadow + 30 entries = 32: the most there may be.
    const full = await yamlFile(`model:\n  shadow: s.json\nmodels:\n${entries(30)}\n`);
    expect((await loadConfig({ file: full })).models).toHaveLength(30);
    const over = await yamlFile(`model:\n  shadow: s.json\nmodels:\n${entries(31)}\n`);
    expect(await configError(loadConfig({ file: over }))).toMatch(
      /models .*at most 32 models in one process, the primary included; this configuration has 33/,
    );
    // A primary entry replaces model: 32 entries are 32 models.
    const listed = await yamlFile(`models:\n${entries(32, 'primary')}\n`);
    expect((await loadConfig({ file: listed })).models).toHaveLength(32);
  });

  it('lists the allowed keys when a key is unknown', async () => {
    const file = await yamlFile(
      'server:\n  prot: 80\nauth:\n  tokens:\n    - name: x\n      token: abcdefghijklmnopq\n      scopes: [ingest]\n      prefix: a-\n',
    );
    const message = await configError(loadConfig({ file }));
    expect(message).toMatch(
      /server \(from .*\): unknown key 'prot'; allowed: host, port, allowInsecure, allowedOrigins, allowedHosts, maxConnections, shutdownTimeoutMs, lastPredictions/,
    );
    expect(message).toMatch(
      /auth\.tokens\.0 \(from .*\): unknown key 'prefix'; allowed: name, token, sha256, env, scopes, keyPrefix/,
    );
  });

  it('checks tokens: one secret each, known scopes, JSON from CELLSTREAM_TOKENS', async () => {
    const tokens = JSON.stringify([{ name: 'a', token: 'short', sha256: 'ab', scopes: ['superuser'] }]);
    const message = await configError(loadConfig({ env: { CELLSTREAM_TOKENS: tokens } }));
    expect(message).toMatch(/auth\.tokens\.0\.token .*at least 16 characters/);
    expect(message).toMatch(/auth\.tokens\.0\.sha256 .*64 hex digits/);
    expect(message).toMatch(/auth\.tokens\.0\.scopes\.0 .*"ingest"\|"subscribe"\|"read"\|"admin"/);
    const ok = await loadConfig({
      env: {
        CELLSTREAM_TOKENS: JSON.stringify([{ name: 'a', env: 'X', scopes: ['ingest'], keyPrefix: 'a-' }]),
      },
    });
    expect(ok.auth.tokens[0]).toMatchObject({ name: 'a', keyPrefix: 'a-' });
    const both = JSON.stringify([{ name: 'b', env: 'X', token: 'abcdefghijklmnopq', scopes: ['ingest'] }]);
    expect(await configError(loadConfig({ env: { CELLSTREAM_TOKENS: both } }))).toMatch(
      /give exactly one of token, sha256 or env/,
    );
  });

  it('documents every environment variable in docs/configuration.md', async () => {
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile(join(root, 'docs', 'configuration.md'), 'utf8');
    for (const { name, path } of ENV_VARIABLES) {
      expect(doc).toContain(name);
      expect(doc).toContain(path);
    }
  });

  it('refuses a non-loopback bind without tokens unless allowInsecure', async () => {
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('localhost')).toBe(true);
    expect(isLoopback('0.0.0.0')).toBe(false);
    expect(isLoopback('192.168.1.4')).toBe(false);
    const open = await loadConfig({ env: { CELLSTREAM_HOST: '0.0.0.0' } });
    expect(() => checkExposure(open)).toThrow(/auth\.tokens is empty.*allowInsecure: true/);
    expect(() => checkExposure({ ...open, server: { ...open.server, allowInsecure: true } })).not.toThrow();
  });
});

describe('serve configuration: kafka', () => {
  const kafkaYaml = [
    'kafka:',
    '  brokers: [file-broker:9092]',
    '  inputTopic: file-events',
    '  outputTopic: file-predictions',
    '  groupId: file-group',
    '',
  ].join('\n');

  it('is absent by default, and filled with the defaults of `cellstream kafka` when given', async () => {
    expect((await loadConfig()).kafka).toBeUndefined();
    const config = await loadConfig({ file: await yamlFile(kafkaYaml) });
    expect(config.kafka).toEqual({
      brokers: ['file-broker:9092'],
      inputTopic: 'file-events',
      outputTopic: 'file-predictions',
      groupId: 'file-group',
      exactlyOnce: false,
      client: 'kafkajs',
      standbys: 0,
      maxBatch: 1000,
      commitIntervalMs: 1000,
      maxCachedKeys: 20000,
      maxWaitTimeInMs: 500,
      sessionTimeout: 30000,
      heartbeatInterval: 3000,
      onConsumerCrash: 'rejoin',
      maxRejoins: 5,
      stallTimeoutMs: 60000,
      workers: 1,
    });
  });

  it('kafka.workers is an integer from 1 to 64 (file or CELLSTREAM_KAFKA_WORKERS)', async () => {
    const file = await yamlFile(kafkaYaml);
    expect((await loadConfig({ file, env: { CELLSTREAM_KAFKA_WORKERS: '2' } })).kafka?.workers).toBe(2);
    expect((await loadConfig({ file: await yamlFile(`${kafkaYaml}  workers: 64\n`) })).kafka?.workers).toBe(
      64,
    );
    for (const bad of ['0', '65', '1.5', '-1']) {
      const message = await configError(
        loadConfig({ file: await yamlFile(`${kafkaYaml}  workers: ${bad}\n`) }),
      );
      expect(message).toMatch(/kafka\.workers/);
    }
    expect(await configError(loadConfig({ file, env: { CELLSTREAM_KAFKA_WORKERS: 'two' } }))).toMatch(
      /CELLSTREAM_KAFKA_WORKERS/,
    );
  });

  it('takes kafka.standbys 0 or 1 (from CELLSTREAM_KAFKA_STANDBYS too) and refuses more', async () => {
    const file = await yamlFile(kafkaYaml);
    expect((await loadConfig({ file, env: { CELLSTREAM_KAFKA_STANDBYS: '1' } })).kafka?.standbys).toBe(1);
    const message = await configError(loadConfig({ file, flags: { 'kafka.standbys': 2 } }));
    expect(message).toMatch(/kafka\.standbys/);
  });

  it('layers file < environment < flags, key by key', async () => {
    const config = await loadConfig({
      file: await yamlFile(kafkaYaml),
      env: { CELLSTREAM_KAFKA_GROUP_ID: 'env-group', CELLSTREAM_KAFKA_EXACTLY_ONCE: 'yes' },
      flags: {
        'kafka.brokers': 'a:1, b:2',
        'kafka.inputTopic': 'flag-events',
        'kafka.groupId': undefined,
      },
    });
    expect(config.kafka).toMatchObject({
      brokers: ['a:1', 'b:2'],
      inputTopic: 'flag-events',
      outputTopic: 'file-predictions',
      groupId: 'env-group',
      exactlyOnce: true,
    });
  });

  it('names each bad or missing Kafka key and where it came from', async () => {
    const missing = await configError(loadConfig({ flags: { 'kafka.inputTopic': 'events' } }));
    expect(missing).toMatch(/kafka\.brokers: required/);
    expect(missing).toMatch(/kafka\.outputTopic: required/);
    expect(missing).toMatch(/kafka\.groupId: required/);

    const bad = await configError(
      loadConfig({
        file: await yamlFile(`${kafkaYaml}  maxBatch: 0\n  heartbeatInterval: 40000\n`),
        env: { CELLSTREAM_KAFKA_OUTPUT_TOPIC: 'no spaces' },
        flags: { 'kafka.brokers': 'localhost' },
      }),
    );
    expect(bad).toMatch(/kafka\.brokers\.0 \(from flag for kafka\.brokers\): a broker is host:port/);
    expect(bad).toMatch(/kafka\.outputTopic \(from CELLSTREAM_KAFKA_OUTPUT_TOPIC\): a Kafka topic name/);
    expect(bad).toMatch(/kafka\.maxBatch \(from .*cellstream\.yaml\)/);
    expect(bad).toMatch(/kafka\.heartbeatInterval .*below kafka\.sessionTimeout/);

    const typo = await configError(loadConfig({ file: await yamlFile(`${kafkaYaml}  groupID: x\n`) }));
    expect(typo).toMatch(/kafka .*unknown key 'groupID'; allowed: brokers, inputTopic/);
  });

  it('refuses state settings the Kafka pipeline does not honour', async () => {
    const message = await configError(
      loadConfig({
        file: await yamlFile(`${kafkaYaml}state:\n  store: memory\n  ttl: 30d\n`),
      }),
    );
    expect(message).toMatch(/state\.store .*with kafka, state is LMDB/);
    expect(message).toMatch(/state\.ttl .*not supported with kafka/);
  });
});
