// Helpers of the Kafka integration tests: a real broker at KAFKA_BROKERS (they fail, never skip,
// without one), topics, events, the offline replay every prediction is checked against.

import { randomUUID } from 'node:crypto';
import { type Admin, type IHeaders, Kafka, type KafkaMessage, logLevel, Partitioners } from 'kafkajs';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import type { Event, Prediction } from '../../src/events/types.js';
import { loadModel } from '../../src/formats/load.js';
import {
  KAFKA_CLIENTS,
  type KafkaAdmin,
  type KafkaClient,
  type KafkaClientName,
} from '../../src/kafka/adapter.js';
import { createKafka } from '../../src/kafka/client.js';
import { dropKafkajsNegativeTimerWarning } from '../../src/kafka/nodeWarnings.js';
import { ensureTopics } from '../../src/kafka/topics.js';
import type { Model } from '../../src/model/types.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';

// A test worker owns its process as the CLI does: kafkajs's harmless Node 24 warning is dropped here too.
dropKafkajsNegativeTimerWarning();

export const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092')
  .split(',')
  .map((b) => b.trim())
  .filter((b) => b.length > 0);

/**
 * Points every helper of this file (and whatever else reads `brokers`) at another broker, e.g. a
 * test's own one (test/helpers/ownBroker.ts). Each test file runs in its own process.
 */
export function useBrokers(list: readonly string[]): void {
  brokers.splice(0, brokers.length, ...list);
}

/** The ONNX LSTM (4 inputs, 8 units, 3 outputs) the Kafka tests serve. */
export const MODEL_FILE = new URL('../golden/fixtures/onnx-torch-lstm1-seqfirst/model.onnx', import.meta.url)
  .pathname;
export const loadTestModel = (): Promise<Model> => loadModel(MODEL_FILE);

/**
 * The client library cellstream's Kafka code runs with in these tests: `CELLSTREAM_TEST_KAFKA_CLIENT`
 * (kafkajs or platformatic), default kafkajs. The tests' own producers and consumers (fixtures and
 * checks) are kafkajs either way; only the code under test changes.
 */
export const kafkaClientUnderTest: KafkaClientName = (() => {
  const name = process.env.CELLSTREAM_TEST_KAFKA_CLIENT ?? 'kafkajs';
  if (!(KAFKA_CLIENTS as readonly string[]).includes(name))
    throw new Error(`CELLSTREAM_TEST_KAFKA_CLIENT must be one of ${KAFKA_CLIENTS.join(', ')}, not '${name}'`);
  return name as KafkaClientName;
})();

/** A delivery mode a Kafka test runs in. */
export interface DeliveryMode {
  readonly mode: 'at-least-once' | 'exactly-once';
  readonly exactlyOnce: boolean;
}

/** The delivery modes the Kafka tests run in: both, on either client. */
export const deliveryModes: readonly DeliveryMode[] = [
  { mode: 'at-least-once', exactlyOnce: false },
  { mode: 'exactly-once', exactlyOnce: true },
];

/** The strongest delivery mode: exactly-once. */
export const strongestDeliveryMode: DeliveryMode = deliveryModes[deliveryModes.length - 1]!;

/** cellstream's Kafka adapter on the client under test. */
export function testClient(clientId = 'cellstream-test'): Promise<KafkaClient> {
  return createKafka({ brokers, clientId, client: kafkaClientUnderTest, logLevel: 'nothing' });
}

/**
 * The arguments of `cellstream kafka` (after the bin) for `model` (default the test model) on
 * `brokers` and the client under test, consuming
 * `t`'s input topic into its output topic in its group; `extra` adds the rest (state, tuning).
 */
export function kafkaCommandArgs(
  t: { readonly inputTopic: string; readonly outputTopic: string; readonly groupId: string },
  extra: readonly string[] = [],
  model: string = MODEL_FILE,
): string[] {
  return [
    'kafka',
    '--model',
    model,
    '--kafka-brokers',
    brokers.join(','),
    '--kafka-client',
    kafkaClientUnderTest,
    '--input-topic',
    t.inputTopic,
    '--output-topic',
    t.outputTopic,
    '--group-id',
    t.groupId,
    ...extra,
  ];
}

export function testKafka(clientId = 'cellstream-test'): Kafka {
  return new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING });
}

/** Throws a clear error when no broker answers, so a missing broker fails the test. */
export async function requireBroker(): Promise<void> {
  const probe = new Kafka({
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    retry: { retries: 1 },
  }).admin();
  try {
    await probe.connect();
    await probe.listTopics();
  } catch (err) {
    throw new Error(
      `No Kafka broker answers at ${brokers.join(',')} (KAFKA_BROKERS): ${(err as Error).message}. ` +
        'Run the tests with a broker: scripts/kafka/with-kafka.sh npx vitest run, or npm test.',
    );
  } finally {
    await probe.disconnect().catch(() => {});
  }
}

/** Fresh topic names for one test. */
export function topicsFor(name: string) {
  const id = `${name}-${randomUUID().slice(0, 8)}`;
  return {
    inputTopic: `${id}-events`,
    outputTopic: `${id}-predictions`,
    deadLetterTopic: `${id}-dead`,
    changelogTopic: `${id}-changelog`,
    groupId: `${id}-group`,
  };
}

export type Topics = ReturnType<typeof topicsFor>;

export async function withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

/**
 * cellstream's admin adapter on kafkajs, for fixtures: they go through kafkajs whichever client is
 * under test, as the tests' own producers and consumers do.
 */
export async function withFixtureAdmin<T>(fn: (admin: KafkaAdmin) => Promise<T>): Promise<T> {
  const admin = (await createKafka({ brokers, client: 'kafkajs', logLevel: 'nothing' })).admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Creates `topic` as the pipeline creates its own: waiting until the broker knows it and its
 * leaders. `configEntries`: topic configs to create it with.
 */
export async function createTopic(
  topic: string,
  partitions: number,
  configEntries: ReadonlyArray<{ name: string; value: string }> = [],
): Promise<void> {
  await withFixtureAdmin((admin) =>
    ensureTopics(admin, [{ topic, partitions, replicationFactor: 1, configEntries }]),
  );
}

/** Fresh topic names for one test (topicsFor), with the input topic created with `partitions` partitions. */
export async function createInputTopic(name: string, partitions: number): Promise<Topics> {
  const t = topicsFor(name);
  await createTopic(t.inputTopic, partitions);
  return t;
}

/** A deterministic stream of `n` events over `keys` keys with uneven frequencies; 4 features each. */
export function makeEvents(n: number, keys: number, seed = 1): Event[] {
  let s = seed;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 1073741824 - 1;
  };
  return Array.from({ length: n }, (_, i) => ({
    key: `k${Math.floor(((next() + 1) / 2) ** 2 * keys)}`,
    ts: 1_700_000_000_000 + i,
    features: [next(), next(), next(), next()],
  }));
}

export interface OutMessage {
  key: string | null;
  value: string;
  partition: number;
  offset: string;
  /** The record's timestamp, ms since the epoch (the producing client's clock when it sent it). */
  timestamp?: number;
}

/** Sends `messages` (keyed) in order, in chunks, acknowledged by all replicas. */
export async function produce(
  topic: string,
  messages: ReadonlyArray<{ key: string | null; value: string }>,
  chunk = 2000,
) {
  const producer = testKafka().producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await connectWhenBrokerIsBack(producer);
  try {
    for (let i = 0; i < messages.length; i += chunk) {
      await producer.send({ topic, acks: -1, messages: messages.slice(i, i + chunk) });
    }
  } finally {
    await producer.disconnect();
  }
}

/**
 * Connects a fixture producer. Just after a broker restart its metadata may name no controller yet
 * (`KafkaJSBrokerNotFound`: broker -1), which kafkajs does not retry on connect: the fault tests'
 * own producer must wait that out, as cellstream's clients do.
 */
async function connectWhenBrokerIsBack(producer: { connect(): Promise<void> }, limitMs = 60_000) {
  const deadline = Date.now() + limitMs;
  for (;;) {
    try {
      await producer.connect();
      return;
    } catch (err) {
      const notYet = err instanceof Error && err.name === 'KafkaJSBrokerNotFound';
      if (!notYet || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export const eventMessages = (events: readonly Event[]) =>
  events.map((e) => ({ key: e.key, value: JSON.stringify(e) }));

/** The whole of `topic` up to its current end, read by a fresh group (`read_committed` unless told). */
export async function readTopic(
  topic: string,
  options: { readUncommitted?: boolean } = {},
): Promise<Array<OutMessage & { headers: IHeaders; bytes: Buffer | null }>> {
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const remaining = new Map(ends.map((e) => [e.partition, BigInt(e.high)]));
  const done = () => [...remaining.values()].every((v) => v <= 0n);
  const out: Array<OutMessage & { headers: IHeaders; bytes: Buffer | null }> = [];
  const ends_ = new Map(ends.map((e) => [e.partition, BigInt(e.high)]));
  const consumer = kafka.consumer({
    groupId: `reader-${randomUUID()}`,
    maxWaitTimeInMs: 100,
    readUncommitted: options.readUncommitted ?? false,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const finished = new Promise<void>((resolve) => {
    const check = (partition: number, next: bigint) => {
      if (next >= (ends_.get(partition) ?? 0n)) remaining.set(partition, 0n);
      if (done()) resolve();
    };
    if (done()) resolve();
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) =>
      check(payload.partition, BigInt(payload.lastOffset) + 1n),
    );
    void consumer.run({
      eachBatch: async ({ batch }) => {
        const end = ends_.get(batch.partition) ?? 0n;
        for (const m of batch.messages as KafkaMessage[]) {
          if (BigInt(m.offset) >= end) continue;
          out.push({
            key: m.key?.toString() ?? null,
            value: m.value?.toString() ?? '',
            partition: batch.partition,
            offset: m.offset,
            timestamp: Number(m.timestamp),
            headers: m.headers ?? {},
            bytes: m.value,
          });
        }
      },
    });
  });
  await finished;
  await consumer.disconnect();
  return out;
}

/** Each key's predictions as the engine computes them offline, over the same events in the same order. */
export async function offlineReplay(
  model: Model,
  events: readonly Event[],
): Promise<Map<string, Prediction[]>> {
  const stepper = new KeyedStepper({
    model,
    store: new MemoryStateStore({ maxKeys: Number.MAX_SAFE_INTEGER }),
  });
  const outcomes = await stepper.process(events.map((event) => ({ event, position: { kind: 'none' } })));
  const byKey = new Map<string, Prediction[]>();
  for (const o of outcomes) {
    if (o.kind !== 'prediction') continue;
    const list = byKey.get(o.prediction.key) ?? [];
    list.push(o.prediction);
    byKey.set(o.prediction.key, list);
  }
  return byKey;
}

export interface Verdict {
  /** Predictions received (repeats included). */
  received: number;
  /** Expected (key, seq) pairs with no prediction. */
  missing: number;
  /** Predictions unlike the offline replay's at their (key, seq), or with a seq it never reaches: double steps. */
  divergent: number;
  /** Predictions received more than once, identical (at-least-once redelivery). */
  repeated: number;
  /** Keys whose prediction count (distinct seqs) matches. */
  completeKeys: number;
}

/** Checks every received prediction against the offline replay. */
export function judge(expected: Map<string, Prediction[]>, received: readonly OutMessage[]): Verdict {
  const seen = new Map<string, Set<number>>();
  let divergent = 0;
  let repeated = 0;
  for (const m of received) {
    const p = JSON.parse(m.value) as Prediction;
    const want = expected.get(p.key)?.[p.seq - 1];
    if (!want || m.key !== p.key || JSON.stringify(want) !== JSON.stringify(p)) {
      divergent++;
      if (process.env.KAFKA_FAULTS_DEBUG && divergent <= 5) {
        process.stdout.write(
          `divergent: got ${m.value} at ${m.partition}/${m.offset}, want ${JSON.stringify(want)}\n`,
        );
      }
      continue;
    }
    const s = seen.get(p.key) ?? new Set<number>();
    if (s.has(p.seq)) repeated++;
    s.add(p.seq);
    seen.set(p.key, s);
  }
  let missing = 0;
  let completeKeys = 0;
  for (const [key, list] of expected) {
    const got = seen.get(key)?.size ?? 0;
    missing += list.length - got;
    if (got === list.length) completeKeys++;
  }
  return { received: received.length, missing, divergent, repeated, completeKeys };
}

/**
 * The group's committed offsets' total lag behind the ends of `topic`. Retries what Kafka calls
 * retriable for up to 30 s: right after a broker restart or pause the group coordinator answers
 * `COORDINATOR_LOAD_IN_PROGRESS` for a while, and kafkajs's admin does not retry `fetchOffsets`
 * (it failed a broker-pause fault test in the fixture, not in cellstream).
 */
export async function groupLag(groupId: string, topic: string): Promise<bigint> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await withAdmin(async (admin) => {
        const ends = await admin.fetchTopicOffsets(topic);
        const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
        let lag = 0n;
        for (const e of ends) {
          const c = committed.partitions.find((p) => p.partition === e.partition)?.offset ?? '-1';
          lag += BigInt(e.high) - (BigInt(c) < 0n ? BigInt(e.low) : BigInt(c));
        }
        return lag;
      });
    } catch (err) {
      if ((err as { retriable?: unknown }).retriable !== true || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/** Waits until the group `t.groupId` has committed everything in `t.inputTopic` (lag 0). */
export function waitForCatchUp(t: Pick<Topics, 'groupId' | 'inputTopic'>, limitMs?: number): Promise<void> {
  return waitUntil(
    async () => (await groupLag(t.groupId, t.inputTopic)) === 0n,
    'the group to catch up',
    limitMs,
  );
}

/** Polls `condition` until it holds; a hang guard, not an assertion on time. */
export async function waitUntil(
  condition: () => Promise<boolean> | boolean,
  what: string,
  limitMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
