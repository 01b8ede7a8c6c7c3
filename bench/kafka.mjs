// End-to-end Kafka figures on the built JS, against the broker at KAFKA_BROKERS, for each client
// library (kafka.client): events/s and CPU from the input topic to the predictions topic for one
// instance — the no-inference passthrough, at-least-once and exactly-once — and the time to
// restore N keys from the changelog into an empty LMDB.
//   npm run bench:kafka -- [--events 100000] [--keys 10000] [--restore-keys 100000] [--partitions 6]
//                          [--model demo/visits.cellstream.json] [--clients kafkajs,platformatic]
//                          [--rounds 1]
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
import { loadModel } from '../dist/formats/load.js';
import { createKafka } from '../dist/kafka/client.js';
import { ChangelogReader } from '../dist/state/changelogReader.js';
import { ChangelogStore } from '../dist/state/changelogStore.js';
import { LmdbStore } from '../dist/state/lmdbStore.js';
import { brokers as kafkaBrokers, kafkaClient, throughput } from './kafkaE2e.mjs';

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
  },
});
const kafka = kafkaClient();
const clients = args.clients.split(',').map((c) => c.trim());
const PARTITIONS = Number(args.partitions);
const model = await loadModel(new URL(`../${args.model}`, import.meta.url).pathname);
const withSpec = model.metadata?.features !== undefined;
const inputSize = model.inputs[0].size;
const admin = kafka.admin();
await admin.connect();

async function topic(name) {
  await admin.createTopics({
    topics: [{ topic: name, numPartitions: PARTITIONS, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  return name;
}

function events(n, keys) {
  let s = 5;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 1073741824 - 1;
  };
  return Array.from({ length: n }, (_, i) => {
    const key = `k${Math.floor(((next() + 1) / 2) * keys)}`;
    // Event time advances about a day per event across the stream, so derived intervals are real.
    const ts = 1_700_000_000_000 + i * 86_400_000;
    const event = withSpec
      ? { key, ts, values: { spend: 65 + 20 * next(), channel: ['store', 'app', 'web'][i % 3] } }
      : { key, ts, features: Array.from({ length: inputSize }, next) };
    return { key, value: JSON.stringify(event) };
  });
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
const messages = events(Number(args.events), Number(args.keys));
const run = (client, mode) =>
  throughput(kafka, {
    model,
    messages,
    partitions: PARTITIONS,
    batch: Number(args.batch),
    exactlyOnce: mode === 'exactly-once',
    passthrough: mode === 'passthrough',
    client,
  });
const rows = [];
for (let round = 0; round < Number(args.rounds); round++) {
  for (const mode of ['passthrough', 'at-least-once', 'exactly-once']) {
    for (const client of clients) {
      const r = await run(client, mode);
      r.cpuMicrosPerEvent = +((r.cpuSeconds * 1e6) / r.events).toFixed(1);
      rows.push(r);
      console.log(JSON.stringify({ throughput: r }));
    }
  }
}
// Medians per client and mode, and end to end over the passthrough through the same client.
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const client of clients) {
  const of = (mode, f) => median(rows.filter((r) => r.client === client && r.mode === mode).map(f));
  const eps = (mode) => of(mode, (r) => r.eventsPerSecond);
  const cpu = (mode) => of(mode, (r) => r.cpuMicrosPerEvent);
  console.log(
    JSON.stringify({
      summary: {
        client,
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
        atLeastOnceVsPassthrough: +(eps('at-least-once') / eps('passthrough')).toFixed(2),
        exactlyOnceVsPassthrough: +(eps('exactly-once') / eps('passthrough')).toFixed(2),
      },
    }),
  );
}
console.log(JSON.stringify({ restore: await restore() }));
await admin.disconnect();
