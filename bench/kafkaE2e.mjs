// Kafka end to end on the built JS: events/s from an input topic to the predictions topic for one
// pipeline instance, with the engine (state in LMDB behind its changelog) or as the no-inference
// passthrough through the same consumer, producer and offset commits.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { startKafkaInstance } from '../dist/pipelines/kafkaWorkers.js';

export const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');

export function kafkaClient() {
  return new Kafka({ clientId: 'bench', brokers, logLevel: logLevel.NOTHING });
}

/** Whether a broker answers at KAFKA_BROKERS within a few seconds. */
export async function brokerUp() {
  const admin = new Kafka({
    clientId: 'bench-probe',
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    retry: { retries: 1 },
  }).admin();
  try {
    await admin.connect();
    await admin.listTopics();
    return true;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** `n` events over `keys` keys, `width` features each, from a fixed seed. */
export function events(n, keys, width) {
  let s = 5;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 1073741824 - 1;
  };
  return Array.from({ length: n }, (_, i) => {
    const key = `k${Math.floor(((next() + 1) / 2) * keys)}`;
    const features = Array.from({ length: width }, next);
    return { key, value: JSON.stringify({ key, ts: 1_700_000_000_000 + i, features }) };
  });
}

/**
 * `n` events over `keys` keys for `model`: named `values` when it has a feature spec (event time
 * advancing about a day per event, so derived intervals are real), else random `features`.
 */
export function modelEvents(model, n, keys) {
  const withSpec = model.metadata?.features !== undefined;
  const inputSize = model.inputs[0].size;
  let s = 5;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 1073741824 - 1;
  };
  return Array.from({ length: n }, (_, i) => {
    const key = `k${Math.floor(((next() + 1) / 2) * keys)}`;
    const ts = 1_700_000_000_000 + i * 86_400_000;
    const event = withSpec
      ? { key, ts, values: { spend: 65 + 20 * next(), channel: ['store', 'app', 'web'][i % 3] } }
      : { key, ts, features: Array.from({ length: inputSize }, next) };
    return { key, value: JSON.stringify(event) };
  });
}

/** Whether every member of `instance` owns partitions of its own, `partitions` in all. */
function settled(instance, groupId, partitions) {
  const members = instance.health.snapshot(groupId).workers;
  if (members === undefined) return instance.partitions().length === partitions;
  const owned = members.map((m) => m?.partitions ?? []);
  return (
    owned.every((ps) => ps.length > 0) &&
    new Set(owned.flat()).size === owned.flat().length &&
    owned.flat().length === partitions
  );
}

/**
 * Produces `messages` to a fresh topic, then times one pipeline instance (`workers` group members,
 * on worker threads when above 1) from start until its group's lag is 0. `passthrough` runs the
 * no-inference baseline. Besides the whole run (group join and restores included), the `steady`
 * figures start once every member owns partitions and 10% of the events are committed, and end at
 * 90%: the rebalance a second member's join causes falls outside them.
 */
export async function throughput(
  kafka,
  {
    model,
    messages,
    partitions,
    batch,
    exactlyOnce = false,
    passthrough = false,
    pipelineOptions = {},
    hooks = {},
    formats = {},
    client = 'kafkajs',
    workers = 1,
  },
) {
  const admin = kafka.admin();
  await admin.connect();
  const id = `bench-${randomUUID().slice(0, 8)}`;
  const inputTopic = `${id}-events`;
  await admin.createTopics({
    topics: [{ topic: inputTopic, numPartitions: partitions, replicationFactor: 1 }],
    waitForLeaders: true,
  });
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  for (let i = 0; i < messages.length; i += 5000)
    await producer.send({ topic: inputTopic, acks: -1, messages: messages.slice(i, i + 5000) });
  await producer.disconnect();

  const groupId = `${id}-group`;
  // Retries what Kafka calls retriable for up to 30 s: on a broker just started the group
  // coordinator answers GROUP_LOAD_IN_PROGRESS for a while, and kafkajs's admin does not retry
  // fetchOffsets (it ended a run on Node 24 under load; test/helpers/kafka.ts's groupLag does the same).
  const lag = async () => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const ends = await admin.fetchTopicOffsets(inputTopic);
        const [committed] = await admin.fetchOffsets({ groupId, topics: [inputTopic] });
        return ends.reduce((n, e) => {
          const c = Number(committed.partitions.find((p) => p.partition === e.partition)?.offset ?? -1);
          return n + Number(e.high) - Math.max(c, 0);
        }, 0);
      } catch (err) {
        if (err?.retriable !== true || Date.now() > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  };
  const stateDir = await mkdtemp(join(tmpdir(), 'cellstream-bench-'));
  await hooks.started?.();
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const pipeline = await startKafkaInstance({
    workers,
    model,
    brokers,
    inputTopic,
    outputTopic: `${id}-predictions`,
    deadLetterTopic: `${id}-dead`,
    changelogTopic: `${id}-changelog`,
    groupId,
    stateDir,
    exactlyOnce,
    passthrough,
    maxBatch: batch,
    maxWaitTimeInMs: 100,
    client,
    logLevel: process.env.BENCH_KAFKA_LOG ? 'error' : 'nothing',
    ...pipelineOptions,
    // kafka.input / kafka.output / kafka.registry (src/records): e.g. Avro in and out.
    ...formats,
  });
  // process.cpuUsage() is the whole process's (getrusage), worker threads included.
  let from;
  let to;
  for (;;) {
    const left = await lag();
    const done = messages.length - left;
    const mark = { at: performance.now(), cpu: process.cpuUsage(cpu0), done };
    if (from === undefined && done >= messages.length * 0.1 && settled(pipeline, groupId, partitions))
      from = mark;
    if (to === undefined && done >= messages.length * 0.9) to = mark;
    if (left <= 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  // A run whose members settled only after 90% has no steady window.
  const steadyEvents = from && to && to.at > from.at ? to.done - from.done : 0;
  const steadyCpu = steadyEvents > 0 ? to.cpu.user + to.cpu.system - from.cpu.user - from.cpu.system : 0;
  await hooks.finished?.();
  const { rebalances } = pipeline.health.snapshot(groupId);
  await pipeline.stop();
  const changelogRecords = passthrough
    ? 0
    : (await admin.fetchTopicOffsets(`${id}-changelog`)).reduce((n, p) => n + Number(p.high), 0);
  await admin.disconnect();
  await rm(stateDir, { recursive: true, force: true });
  return {
    client,
    mode: passthrough ? 'passthrough' : exactlyOnce ? 'exactly-once' : 'at-least-once',
    workers,
    events: messages.length,
    predictions: pipeline.stats.predictions,
    rejected: pipeline.stats.rejected,
    seconds: +seconds.toFixed(2),
    eventsPerSecond: Math.round(messages.length / seconds),
    cpuSeconds: +((cpu.user + cpu.system) / 1e6).toFixed(2),
    cpuMicrosPerEvent: +((cpu.user + cpu.system) / messages.length).toFixed(1),
    changelogRecordsPerEvent: +(changelogRecords / messages.length).toFixed(3),
    // Group joins summed over the members, and changelog records restores read: a rebalance's cost.
    rebalances,
    restoredRecords: pipeline.stats.restoredRecords,
    steadyEventsPerSecond: steadyEvents > 0 ? Math.round(steadyEvents / ((to.at - from.at) / 1000)) : null,
    steadyCpuMicrosPerEvent: steadyEvents > 0 ? +(steadyCpu / steadyEvents).toFixed(1) : null,
  };
}
