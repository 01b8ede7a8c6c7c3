// End-to-end Kafka figures on the built JS, against the broker at KAFKA_BROKERS, for each client
// library (kafka.client): events/s and CPU from the input topic to the predictions topic for one
// instance — the no-inference passthrough, at-least-once and exactly-once — the same at-least-once
// run with Avro in and Avro out (through the schema registry at SCHEMA_REGISTRY_URL) against JSON
// in and out, alternating, and
// the time to restore N keys from the changelog into an empty LMDB.
//   npm run bench:kafka -- [--events 100000] [--keys 10000] [--restore-keys 100000] [--partitions 6]
//                          [--model demo/visits.cellstream.json] [--clients kafkajs,platformatic]
//                          [--rounds 1] [--format-rounds 2] [--only formats|throughput]
//                          [--workers 1,2] [--modes passthrough,at-least-once,exactly-once]
// --workers runs each mode with each count of group members in the one instance (kafka.workers),
// interleaved with the rest; --only throughput skips the formats and restore parts.
// With several clients and rounds, the runs interleave (client A, client B, A, B …) so a noisy
// machine weighs on each alike; each line is one run.
// The default model is the demo (an LSTM of 32 units over a feature spec: each event's `values`
// are encoded, the interval since the key's previous visit derived from `ts`, and the prediction
// decoded). A model without a feature spec gets random `features` vectors instead.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { loadModel } from '../dist/formats/load.js';
import { createKafka } from '../dist/kafka/client.js';
import { ChangelogReader } from '../dist/state/changelogReader.js';
import { ChangelogStore } from '../dist/state/changelogStore.js';
import { LmdbStore } from '../dist/state/lmdbStore.js';
import { brokers as kafkaBrokers, kafkaClient, modelEvents, throughput } from './kafkaE2e.mjs';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' },
    keys: { type: 'string', default: '10000' },
    'restore-keys': { type: 'string', default: '100000' },
    partitions: { type: 'string', default: '6' },
    batch: { type: 'string', default: '1000' },
    model: { type: 'string', default: 'demo/visits.cellstream.json' },
    clients: { type: 'string', default: 'kafkajs,platformatic' },
    rounds: { type: 'string', default: '1' },
    'format-rounds': { type: 'string', default: '2' },
    only: { type: 'string' },
    workers: { type: 'string', default: '1' },
    modes: { type: 'string', default: 'passthrough,at-least-once,exactly-once' },
  },
});
const kafka = kafkaClient();
const clients = args.clients.split(',').map((c) => c.trim());
const PARTITIONS = Number(args.partitions);
const model = await loadModel(new URL(`../${args.model}`, import.meta.url).pathname);
const withSpec = model.metadata?.features !== undefined;
const admin = kafka.admin();
await admin.connect();

async function topic(name) {
  await admin.createTopics({
    topics: [{ topic: name, numPartitions: PARTITIONS, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  return name;
}

async function restore() {
  const id = `bench-${randomUUID().slice(0, 8)}`;
  const changelog = await topic(`${id}-changelog`);
  const client = await createKafka({ brokers: kafkaBrokers, client: clients[0], logLevel: 'nothing' });
  const producer = client.producer();
  await producer.connect();
  const n = Number(args['restore-keys']);
  const dirA = await mkdtemp(join(tmpdir(), 'cellstream-bench-'));
  const writer = new ChangelogStore({
    local: await LmdbStore.open({ path: dirA }),
    topic: changelog,
    partitions: PARTITIONS,
    producer,
  });
  const state = new Float32Array(16).fill(0.5);
  for (let i = 0; i < n; i += 5000) {
    await writer.putMany(
      Array.from({ length: Math.min(5000, n - i) }, (_, j) => [
        `key-${i + j}`,
        {
          seq: 1,
          ts: 0,
          state,
          lastApplied: { kind: 'offset', topic: 'events', partition: 0, offset: String(i + j) },
          fingerprint: 'f'.repeat(64),
        },
      ]),
    );
  }
  await writer.close();
  const dirB = await mkdtemp(join(tmpdir(), 'cellstream-bench-'));
  const fresh = new ChangelogStore({
    local: await LmdbStore.open({ path: dirB }),
    topic: changelog,
    partitions: PARTITIONS,
    producer,
  });
  const reader = new ChangelogReader(client, { topic: changelog });
  await reader.start();
  const started = performance.now();
  const reports = await fresh.restore(
    Array.from({ length: PARTITIONS }, (_, p) => p),
    reader,
  );
  const seconds = (performance.now() - started) / 1000;
  const size = await fresh.size();
  await reader.stop();
  await fresh.close();
  await producer.disconnect();
  for (const d of [dirA, dirB]) await rm(d, { recursive: true, force: true });
  return {
    client: clients[0],
    keys: n,
    restored: reports.reduce((a, r) => a + r.records, 0),
    size,
    seconds: +seconds.toFixed(2),
    keysPerSecond: Math.round(n / seconds),
  };
}

// The same timed run as `npm run bench`'s Kafka row (bench/kafkaE2e.mjs), over this script's events.
const messages = modelEvents(model, Number(args.events), Number(args.keys));
const run = (client, mode, workers) =>
  throughput(kafka, {
    workers,
    model,
    messages,
    partitions: PARTITIONS,
    batch: Number(args.batch),
    exactlyOnce: mode === 'exactly-once',
    passthrough: mode === 'passthrough',
    client,
  });
/**
 * JSON in and out against Avro in and out (Confluent wire format, schema from the registry; the
 * predictions' schema generated and registered by the pipeline), at-least-once, the same events,
 * alternating so that the machine's noise falls on both alike.
 */
async function formats() {
  const url = process.env.SCHEMA_REGISTRY_URL;
  if (!url)
    throw new Error(
      'SCHEMA_REGISTRY_URL is not set: run under scripts/registry/with-registry.sh (npm run bench:kafka does)',
    );
  const registry = new SchemaRegistry({ host: url });
  const fields = withSpec
    ? [
        { name: 'key', type: 'string' },
        { name: 'ts', type: 'long' },
        { name: 'spend', type: 'double' },
        { name: 'channel', type: 'string' },
      ]
    : [
        { name: 'key', type: 'string' },
        { name: 'ts', type: 'long' },
        { name: 'features', type: { type: 'array', items: 'double' } },
      ];
  const { id } = await registry.register(
    {
      type: SchemaType.AVRO,
      schema: JSON.stringify({ type: 'record', name: 'BenchEvent', namespace: 'bench', fields }),
    },
    { subject: `bench-${randomUUID().slice(0, 8)}-value` },
  );
  const json = messages;
  const avro = [];
  for (const m of json) {
    const e = JSON.parse(m.value);
    const record = withSpec
      ? { key: e.key, ts: e.ts, spend: e.values.spend, channel: e.values.channel }
      : { key: e.key, ts: e.ts, features: e.features };
    avro.push({ key: m.key, value: await registry.encode(id, record) });
  }
  const avroFormats = {
    input: { format: 'avro', mapping: withSpec ? { values: 'spec' } : { features: 'features' } },
    output: { format: 'avro' },
    registry: { url },
  };
  const common = { model, partitions: PARTITIONS, batch: Number(args.batch) };
  const rows = [];
  for (let round = 0; round < Number(args['format-rounds']); round++) {
    rows.push({ format: 'json', round, ...(await throughput(kafka, { ...common, messages: json })) });
    rows.push({
      format: 'avro',
      round,
      ...(await throughput(kafka, { ...common, messages: avro, formats: avroFormats })),
    });
  }
  const of = (f) => rows.filter((r) => r.format === f);
  const best = (f) => Math.max(...of(f).map((r) => r.eventsPerSecond));
  // CPU seconds of this process (the pipeline runs in it) per run: less at the mercy of other
  // processes on a shared machine than wall-clock throughput.
  const medianCpu = (f) => {
    const cpu = of(f)
      .map((r) => r.cpuSeconds)
      .sort((a, b) => a - b);
    return cpu[Math.floor(cpu.length / 2)];
  };
  return {
    rows,
    bestJson: best('json'),
    bestAvro: best('avro'),
    avroOverJson: +(best('avro') / best('json')).toFixed(3),
    medianCpuJson: medianCpu('json'),
    medianCpuAvro: medianCpu('avro'),
  };
}

const workerCounts = args.workers.split(',').map(Number);
const modes = args.modes.split(',').map((m) => m.trim());
if (args.only === undefined || args.only === 'throughput') {
  const rows = [];
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const mode of modes) {
      for (const client of clients) {
        for (const workers of workerCounts) {
          const r = await run(client, mode, workers);
          r.cpuMicrosPerEvent = +((r.cpuSeconds * 1e6) / r.events).toFixed(1);
          rows.push(r);
          console.log(JSON.stringify({ throughput: r }));
        }
      }
    }
  }
  // Medians per client, worker count and mode, and end to end over the passthrough through the same client.
  const median = (xs) => {
    const known = xs.filter((x) => x !== null && x !== undefined).sort((a, b) => a - b);
    return known.length === 0 ? null : known[Math.floor(known.length / 2)];
  };
  for (const client of clients)
    for (const workers of workerCounts) {
      const of = (mode, f) =>
        median(rows.filter((r) => r.client === client && r.mode === mode && r.workers === workers).map(f));
      const eps = (mode) => of(mode, (r) => r.eventsPerSecond);
      const cpu = (mode) => of(mode, (r) => r.cpuMicrosPerEvent);
      console.log(
        JSON.stringify({
          summary: {
            client,
            workers,
            steadyEventsPerSecond: {
              passthrough: of('passthrough', (r) => r.steadyEventsPerSecond),
              atLeastOnce: of('at-least-once', (r) => r.steadyEventsPerSecond),
              exactlyOnce: of('exactly-once', (r) => r.steadyEventsPerSecond),
            },
            steadyCpuMicrosPerEvent: {
              passthrough: of('passthrough', (r) => r.steadyCpuMicrosPerEvent),
              atLeastOnce: of('at-least-once', (r) => r.steadyCpuMicrosPerEvent),
              exactlyOnce: of('exactly-once', (r) => r.steadyCpuMicrosPerEvent),
            },
            eventsPerSecond: {
              passthrough: eps('passthrough'),
              atLeastOnce: eps('at-least-once'),
              exactlyOnce: eps('exactly-once'),
            },
            cpuMicrosPerEvent: {
              passthrough: cpu('passthrough'),
              atLeastOnce: cpu('at-least-once'),
              exactlyOnce: cpu('exactly-once'),
            },
            ...(eps('passthrough') && eps('at-least-once')
              ? { atLeastOnceVsPassthrough: +(eps('at-least-once') / eps('passthrough')).toFixed(2) }
              : {}),
            ...(eps('passthrough') && eps('exactly-once')
              ? { exactlyOnceVsPassthrough: +(eps('exactly-once') / eps('passthrough')).toFixed(2) }
              : {}),
          },
        }),
      );
    }
}
if (args.only === undefined || args.only === 'formats')
  console.log(JSON.stringify({ formats: await formats() }));
if (args.only === undefined) console.log(JSON.stringify({ restore: await restore() }));
await admin.disconnect();
