// Kafka events as Kafka shops write them, end to end against the real broker and a real schema
// registry (Apicurio, Confluent-compatible API): Avro, JSON Schema, Protobuf (framed as Java
// producers frame it) and CloudEvents inputs give the same predictions as the same events in JSON;
// Avro in and out through a schema that evolves mid-stream; poison records dead-lettered with codes.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Message, Partitioners } from 'kafkajs';
import protobuf from 'protobufjs';
import { afterAll, describe, expect, it } from 'vitest';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import type { Prediction } from '../../src/events/types.js';
import { modelFeatures } from '../../src/features/modelFeatures.js';
import { loadModel } from '../../src/formats/load.js';
import type { Model } from '../../src/model/types.js';
import { type KafkaPipelineOptions, startKafkaPipeline } from '../../src/pipelines/kafkaPipeline.js';
import { outputConfig } from '../../src/records/config.js';
import { PredictionEncoder } from '../../src/records/encode.js';
import { RegistryClient } from '../../src/records/registry.js';
import { frame } from '../../src/records/wire.js';
import { DEAD_LETTER_HEADERS } from '../../src/sinks/kafkaSink.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import { ensureBuilt, ROOT } from '../helpers/build.js';
import { runBin } from '../helpers/cli.js';
import {
  brokers,
  createInputTopic,
  kafkaClientUnderTest,
  kafkaCommandArgs,
  readTopic,
  requireBroker,
  testKafka,
  waitForCatchUp,
  waitUntil,
  withAdmin,
} from '../helpers/kafka.js';
import { registerSchema, registryUrl, requireRegistry, testRegistry } from '../helpers/registry.js';
import { startTestServer } from '../helpers/serve.js';

const DEMO_MODEL = new URL('../../demo/visits.cellstream.json', import.meta.url).pathname;
const DEMO_EVENTS = new URL('../../demo/visits.ndjson', import.meta.url).pathname;

interface Visit {
  customer: string;
  at: number;
  spend: number;
  channel: string;
}

async function demoVisits(): Promise<Visit[]> {
  const lines = (await readFile(DEMO_EVENTS, 'utf8')).split('\n').filter((l) => l.trim() !== '');
  return lines.map((l) => {
    const e = JSON.parse(l) as { key: string; ts: string; values: { spend: number; channel: string } };
    return { customer: e.key, at: Date.parse(e.ts), spend: e.values.spend, channel: e.values.channel };
  });
}

const AVRO_VISIT = {
  type: 'record',
  name: 'Visit',
  namespace: 'shop',
  fields: [
    { name: 'customer', type: 'string' },
    { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
    { name: 'spend', type: 'double' },
    { name: 'channel', type: 'string' },
  ],
};
// A compatible next version: an added optional field with a default.
const AVRO_VISIT_V2 = {
  ...AVRO_VISIT,
  fields: [...AVRO_VISIT.fields, { name: 'coupon', type: ['null', 'string'], default: null }],
};
const JSON_VISIT = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  properties: {
    customer: { type: 'string' },
    at: { type: 'integer' },
    spend: { type: 'number' },
    channel: { type: 'string' },
  },
  required: ['customer', 'at', 'spend', 'channel'],
};
// Visit is the file's second message: Java producers write message indexes [1] before its bytes.
const PROTO_VISIT = `syntax = "proto3";
package shop;
message Other { string note = 1; }
message Visit { string customer = 1; int64 at = 2; double spend = 3; string channel = 4; }
`;

const MAPPING = { key: 'customer', ts: 'at', values: 'spec' as const };

async function produceRaw(topic: string, messages: Message[]): Promise<void> {
  const producer = testKafka().producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, messages });
  } finally {
    await producer.disconnect();
  }
}

const dirs: string[] = [];
const running: Array<{ stop(): Promise<void> }> = [];
afterAll(async () => {
  for (const p of running) await p.stop().catch(() => {});
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Runs a pipeline over `topic`'s records until it caught up, then stops it; returns its topics. */
async function runPipeline(
  model: Model,
  name: string,
  messages: Message[],
  formats: Pick<KafkaPipelineOptions, 'input' | 'output' | 'registry'>,
) {
  const t = await createInputTopic(name, 1);
  await produceRaw(t.inputTopic, messages);
  const stateDir = await mkdtemp(join(tmpdir(), `cellstream-records-${name}-`));
  dirs.push(stateDir);
  const pipeline = await startKafkaPipeline({
    model,
    brokers,
    ...t,
    stateDir,
    maxWaitTimeInMs: 100,
    logLevel: 'error',
    client: kafkaClientUnderTest,
    ...formats,
  });
  running.push(pipeline);
  await waitForCatchUp(t);
  await pipeline.stop();
  return t;
}

/** Each key's predictions, in seq order, from JSON output messages. */
function byKey(predictions: readonly Prediction[]): Map<string, Prediction[]> {
  const map = new Map<string, Prediction[]>();
  for (const p of predictions) map.set(p.key, [...(map.get(p.key) ?? []), p]);
  for (const list of map.values()) list.sort((a, b) => a.seq - b.seq);
  return map;
}

async function jsonPredictions(topic: string): Promise<Map<string, Prediction[]>> {
  return byKey((await readTopic(topic)).map((m) => JSON.parse(m.value) as Prediction));
}

describe('Kafka records through a schema registry and CloudEvents', () => {
  it('predictions from Avro, JSON Schema, Protobuf and CloudEvents inputs equal those from the same events as JSON', async () => {
    await requireBroker();
    await requireRegistry();
    const model = await loadModel(DEMO_MODEL);
    const visits = await demoVisits();
    const registry = { url: registryUrl };
    const suffix = Math.random().toString(36).slice(2, 8);

    const json = visits.map((v) => ({
      key: v.customer,
      value: JSON.stringify({ key: v.customer, ts: v.at, values: { spend: v.spend, channel: v.channel } }),
    }));

    const avroId = await registerSchema('AVRO', AVRO_VISIT, `visits-avro-${suffix}-value`);
    const avro = await Promise.all(
      visits.map(async (v) => ({ key: v.customer, value: await testRegistry().encode(avroId, v) })),
    );

    const jsonSchemaId = await registerSchema('JSON', JSON_VISIT, `visits-jsonschema-${suffix}-value`);
    const jsonSchema = await Promise.all(
      visits.map(async (v) => ({ key: v.customer, value: await testRegistry().encode(jsonSchemaId, v) })),
    );

    const protoId = await registerSchema('PROTOBUF', PROTO_VISIT, `visits-proto-${suffix}-value`);
    const Visit = protobuf.parse(PROTO_VISIT).root.lookupType('shop.Visit');
    // As Confluent's Java serializer frames it: magic 0, schema id, message indexes [1], message.
    const proto = visits.map((v) => ({
      key: v.customer,
      value: frame(protoId, Visit.encode(Visit.create(v)).finish(), [1]),
    }));

    const ceBinary = visits.map((v, i) => ({
      key: v.customer,
      value: JSON.stringify({ spend: v.spend, channel: v.channel }),
      headers: {
        ce_specversion: '1.0',
        ce_id: `visit-${i}`,
        ce_source: '/shop/tills',
        ce_type: 'shop.visit',
        ce_subject: v.customer,
        ce_time: new Date(v.at).toISOString(),
        'content-type': 'application/json',
      },
    }));
    const ceStructured = visits.map((v, i) => ({
      key: v.customer,
      value: JSON.stringify({
        specversion: '1.0',
        id: `visit-${i}`,
        source: '/shop/tills',
        type: 'shop.visit',
        subject: v.customer,
        time: new Date(v.at).toISOString(),
        datacontenttype: 'application/json',
        data: { spend: v.spend, channel: v.channel },
      }),
      headers: { 'content-type': 'application/cloudevents+json; charset=UTF-8' },
    }));
    const ceMapping = { key: '$ce.subject', ts: '$ce.time', values: ['spend', 'channel'] };

    const cases: Array<[string, Message[], Pick<KafkaPipelineOptions, 'input' | 'registry'>]> = [
      ['rec-avro', avro, { input: { format: 'avro', mapping: MAPPING }, registry }],
      ['rec-jsonschema', jsonSchema, { input: { format: 'json-schema', mapping: MAPPING }, registry }],
      ['rec-proto', proto, { input: { format: 'protobuf', mapping: MAPPING }, registry }],
      ['rec-ce-binary', ceBinary, { input: { cloudEvents: 'binary', mapping: ceMapping } }],
      ['rec-ce-structured', ceStructured, { input: { cloudEvents: 'auto', mapping: ceMapping } }],
    ];
    // The pipelines run side by side, each on topics of its own: one after another, a group join
    // each, the test outlasted its timeout on a loaded machine.
    const [plain, out, ...ran] = await Promise.all([
      runPipeline(model, 'rec-json', json, {}),
      // Out as JSON Schema in the wire format, wrapped as binary CloudEvents, under a topic-record subject.
      runPipeline(model, 'rec-out-jsonschema', json, {
        output: { format: 'json-schema', cloudEvents: 'binary', subjectNameStrategy: 'topic-record' },
        registry,
      }),
      ...cases.map(([name, messages, formats]) => runPipeline(model, name, messages, formats)),
    ]);
    const baseline = await jsonPredictions(plain.outputTopic);
    expect(baseline.size).toBeGreaterThan(5);
    expect([...baseline.values()].reduce((n, l) => n + l.length, 0)).toBe(visits.length);
    for (const [i, [name]] of cases.entries()) {
      const t = ran[i]!;
      expect(await readTopic(t.deadLetterTopic), name).toEqual([]);
      expect(await jsonPredictions(t.outputTopic), name).toEqual(baseline);
    }

    const messages = await readTopic(out.outputTopic);
    const subjects = (await (await fetch(`${registryUrl}/subjects`)).json()) as string[];
    expect(subjects).toContain(`${out.outputTopic}-dev.cellstream.Prediction`);
    const decoded: Prediction[] = [];
    for (const m of messages) {
      const p = (await testRegistry().decode(m.bytes!)) as Prediction;
      expect(m.headers['ce_type']?.toString()).toBe('dev.cellstream.prediction');
      expect(m.headers['ce_id']?.toString()).toBe(`${p.model}/${p.key}/${p.seq}`);
      expect(m.headers['ce_subject']?.toString()).toBe(p.key);
      decoded.push(p);
    }
    expect(byKey(decoded)).toEqual(baseline);
  }, 180_000);

  it('reads a Protobuf producer that writes no message indexes when told so, and dead-letters its bytes when not', async () => {
    await requireBroker();
    await requireRegistry();
    const model = await loadModel(DEMO_MODEL);
    const visits = (await demoVisits()).slice(0, 20);
    const suffix = Math.random().toString(36).slice(2, 8);
    // The file's first message is the event here: @kafkajs/confluent-schema-registry encodes that one only.
    const schema =
      PROTO_VISIT.replace('message Other { string note = 1; }\n', '') +
      'message Other { string note = 1; }\n';
    const id = await registerSchema('PROTOBUF', schema, `visits-proto-plain-${suffix}-value`);
    const messages = await Promise.all(
      visits.map(async (v) => ({ key: v.customer, value: await testRegistry().encode(id, v) })),
    );
    const registry = { url: registryUrl };
    const told = await runPipeline(model, 'rec-proto-plain', messages, {
      input: { format: 'protobuf', protobufMessageIndexes: false, mapping: MAPPING },
      registry,
    });
    expect(await readTopic(told.deadLetterTopic)).toEqual([]);
    expect((await readTopic(told.outputTopic)).length).toBe(visits.length);

    const notTold = await runPipeline(model, 'rec-proto-indexes', messages, {
      input: { format: 'protobuf', mapping: MAPPING },
      registry,
    });
    // Without indexes, the message's first bytes read as message indexes: field 1's tag 0x0a counts
    // 5 of them, and the string's length byte (odd: 11 for 'customer-NN') is a negative index.
    const dead = await readTopic(notTold.deadLetterTopic);
    expect(await readTopic(notTold.outputTopic)).toEqual([]);
    expect(dead.length).toBe(visits.length);
    for (const [i, d] of dead.entries()) {
      expect(d.headers[DEAD_LETTER_HEADERS.code]?.toString()).toBe('EVENT_UNDECODABLE');
      expect(d.bytes!.equals(messages[i].value)).toBe(true);
    }
  });

  it('runs the demo model on Avro in and Avro out, across a schema evolution mid-stream, and dead-letters poison records', async () => {
    await requireBroker();
    await requireRegistry();
    const model = await loadModel(DEMO_MODEL);
    const visits = await demoVisits();
    const suffix = Math.random().toString(36).slice(2, 8);
    const t = await createInputTopic(`rec-evolve-${suffix}`, 2);
    const subject = `${t.inputTopic}-value`;
    const v1 = await registerSchema('AVRO', AVRO_VISIT, subject);
    const half = Math.floor(visits.length / 2);
    const first = await Promise.all(
      visits
        .slice(0, half)
        .map(async (v) => ({ key: v.customer, value: await testRegistry().encode(v1, v) })),
    );
    await produceRaw(t.inputTopic, first);

    const stateDir = await mkdtemp(join(tmpdir(), 'cellstream-records-evolve-'));
    dirs.push(stateDir);
    const pipeline = await startKafkaPipeline({
      model,
      brokers,
      ...t,
      stateDir,
      maxWaitTimeInMs: 100,
      logLevel: 'error',
      client: kafkaClientUnderTest,
      registry: { url: registryUrl },
      input: { format: 'avro', mapping: MAPPING },
      output: { format: 'avro', subjectNameStrategy: 'topic' },
    });
    running.push(pipeline);
    await waitForCatchUp(t);

    // Mid-stream, the producer moves to a compatible new version (an added optional field).
    const v2 = await registerSchema('AVRO', AVRO_VISIT_V2, subject);
    expect(v2).not.toBe(v1);
    const second = await Promise.all(
      visits.slice(half).map(async (v, i) => ({
        key: v.customer,
        value: await testRegistry().encode(v2, { ...v, coupon: i % 2 === 0 ? null : `c${i}` }),
      })),
    );
    // No mapped spend: a record of another subject's schema on this topic.
    const partial = await registerSchema(
      'AVRO',
      { ...AVRO_VISIT, name: 'Partial', fields: AVRO_VISIT.fields.filter((f) => f.name !== 'spend') },
      `rec-partial-${suffix}`,
    );
    const poison: Message[] = [
      { key: 'poison-1', value: Buffer.from('{"key":"poison-1"}') },
      { key: 'poison-2', value: frame(0x7ffffff0, Buffer.from([2, 0x61])) },
      { key: 'poison-3', value: (await testRegistry().encode(v1, visits[0])).subarray(0, 8) },
      {
        key: 'poison-4',
        value: await testRegistry().encode(partial, { customer: 'poison-4', at: 1, channel: 'app' }),
      },
    ];
    const mixed: Message[] = [...second];
    poison.forEach((p, i) => {
      mixed.splice(20 * (i + 1), 0, p);
    });
    await produceRaw(t.inputTopic, mixed);
    await waitForCatchUp(t);
    await pipeline.stop();

    // The predictions are Avro, in the wire format, under the generated schema registered for the topic.
    const out = await readTopic(t.outputTopic);
    expect(out.length).toBe(visits.length);
    const subjects = (await (await fetch(`${registryUrl}/subjects`)).json()) as string[];
    expect(subjects).toContain(`${t.outputTopic}-value`);
    const decoded = await Promise.all(out.map((m) => testRegistry().decode(m.bytes!) as Promise<Prediction>));
    for (const [i, p] of decoded.entries()) expect(p.key).toBe(out[i].key);

    // Exactly what the engine computes offline over the same events, decoded fields included.
    const features = modelFeatures(model)!;
    const stepper = new KeyedStepper({
      model,
      store: new MemoryStateStore({ maxKeys: 1_000_000 }),
      encodeValues: features.encodeValues,
      decodePrediction: features.decode!,
    });
    const outcomes = await stepper.process(
      visits.map((v) => ({
        event: { key: v.customer, ts: v.at, values: { spend: v.spend, channel: v.channel } },
        position: { kind: 'none' },
      })),
    );
    const expected = outcomes.flatMap((o) => (o.kind === 'prediction' ? [o.prediction] : []));
    expect(expected.length).toBe(visits.length);
    expect(byKey(decoded.map((p) => ({ ...p })))).toEqual(byKey(expected));

    // Every poison record dead-lettered with its code and its bytes exactly as received.
    const dead = await readTopic(t.deadLetterTopic);
    const byPoison = new Map(dead.map((d) => [d.key, d]));
    const codes = ['EVENT_UNDECODABLE', 'EVENT_SCHEMA_UNKNOWN', 'EVENT_UNDECODABLE', 'EVENT_FIELD_MISSING'];
    expect(dead.length).toBe(poison.length);
    poison.forEach((p, i) => {
      const d = byPoison.get(p.key as string);
      expect(d, p.key as string).toBeDefined();
      expect(d!.headers[DEAD_LETTER_HEADERS.code]?.toString()).toBe(codes[i]);
      expect(d!.bytes!.equals(p.value as Buffer)).toBe(true);
    });
  });

  it('serve in Kafka mode takes kafka.input, kafka.output and kafka.registry from its config', async () => {
    await requireBroker();
    await requireRegistry();
    const visits = (await demoVisits()).slice(0, 40);
    const t = await createInputTopic('rec-serve', 2);
    const id = await registerSchema('AVRO', AVRO_VISIT, `${t.inputTopic}-value`);
    await produceRaw(
      t.inputTopic,
      await Promise.all(
        visits.map(async (v) => ({ key: v.customer, value: await testRegistry().encode(id, v) })),
      ),
    );
    const dir = await mkdtemp(join(tmpdir(), 'cellstream-records-serve-'));
    dirs.push(dir);
    const server = await startTestServer({
      model: { path: DEMO_MODEL },
      state: { store: 'lmdb', path: join(dir, 'state') },
      // They would forward JSON into the Avro topic: the config refuses them with this input.
      sources: { websocket: { enabled: false }, demo: { enabled: false } },
      kafka: {
        brokers,
        ...t,
        maxWaitTimeInMs: 100,
        registry: { url: registryUrl },
        input: { format: 'avro', mapping: MAPPING },
        output: { format: 'avro', cloudEvents: 'binary' },
      },
    });
    try {
      await waitForCatchUp(t);
      const out = await readTopic(t.outputTopic);
      expect(out.length).toBe(visits.length);
      for (const m of out) {
        const p = (await testRegistry().decode(m.bytes!)) as Prediction;
        expect(m.headers['ce_id']?.toString()).toBe(`${p.model}/${p.key}/${p.seq}`);
        expect(m.headers['content-type']?.toString()).toBe('application/avro');
      }
      // The served state is the Kafka pipeline's: a key the producer sent has its decoded prediction.
      const key = (await (await fetch(`${server.url}/v1/keys/${visits[0].customer}`)).json()) as {
        prediction: { next_interval_days: number };
      };
      expect(key.prediction.next_interval_days).toEqual(expect.any(Number));
    } finally {
      await server.close();
    }
  });

  it('with autoRegister off, uses the schema registered under the subject, and refuses to start without one', async () => {
    await requireRegistry();
    const model = await loadModel(DEMO_MODEL);
    const registry = new RegistryClient({ url: registryUrl, retries: 1 });
    const shape = { outputs: 1, output: modelFeatures(model)!.spec.output! };
    const topic = `rec-noauto-${Math.random().toString(36).slice(2, 8)}`;
    const noAuto = outputConfig({ format: 'avro', autoRegister: false });
    const refused = PredictionEncoder.create({ output: noAuto, registry, topic, shape });
    await expect(refused).rejects.toThrow(
      /no schema is registered under subject 'rec-noauto-\w+-value'.*autoRegister/,
    );
    const registered = await PredictionEncoder.create({
      output: outputConfig({ format: 'avro' }),
      registry,
      topic,
      shape,
    });
    const used = await PredictionEncoder.create({ output: noAuto, registry, topic, shape });
    expect(used.schemaId).toBe(registered.schemaId);
  });

  it('cellstream kafka --formats reads Avro and writes Avro as its file says, and refuses a bad file before connecting', async () => {
    await requireBroker();
    await requireRegistry();
    ensureBuilt();
    const dir = await mkdtemp(join(tmpdir(), 'cellstream-records-cli-'));
    dirs.push(dir);
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'input: {format: avro}\n');
    const refused = await runBin([
      'kafka',
      '--model',
      DEMO_MODEL,
      '--kafka-brokers',
      brokers.join(','),
      '--input-topic',
      'x',
      '--output-topic',
      'y',
      '--group-id',
      'z',
      '--state',
      join(dir, 's0'),
      '--formats',
      bad,
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/input.format avro needs the schema registry: set registry.url/);

    const visits = (await demoVisits()).slice(0, 30);
    const t = await createInputTopic('rec-cli', 1);
    const id = await registerSchema('AVRO', AVRO_VISIT, `${t.inputTopic}-value`);
    await produceRaw(
      t.inputTopic,
      await Promise.all(
        visits.map(async (v) => ({ key: v.customer, value: await testRegistry().encode(id, v) })),
      ),
    );
    const formats = join(dir, 'formats.yaml');
    await writeFile(
      formats,
      `registry: {url: '${registryUrl}'}\ninput: {format: avro, mapping: {key: customer, ts: at, values: spec}}\noutput: {format: avro}\n`,
    );
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'bin', 'cellstream.js'),
        ...kafkaCommandArgs(
          t,
          [
            '--dead-letter-topic',
            t.deadLetterTopic,
            '--state',
            join(dir, 'state'),
            '--http-port',
            '0',
            '--formats',
            formats,
          ],
          DEMO_MODEL,
        ),
      ],
      { cwd: ROOT, env: { ...process.env, CELLSTREAM_DEBUG: '' } },
    );
    let stderr = '';
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      await waitForCatchUp(t);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, stderr).toBe(0);
    const out = await readTopic(t.outputTopic);
    expect(out.length).toBe(visits.length);
    for (const m of out) {
      const p = (await testRegistry().decode(m.bytes!)) as Prediction;
      expect(p.key).toBe(m.key);
      expect(p['next_interval_days']).toEqual(expect.any(Number));
    }
    await waitUntil(
      async () => (await withAdmin((a) => a.listTopics())).includes(t.deadLetterTopic),
      'dead letters',
    );
    expect(await readTopic(t.deadLetterTopic)).toEqual([]);
  });
});
