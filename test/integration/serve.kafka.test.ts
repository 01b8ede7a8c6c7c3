// `serve` in Kafka mode against a real broker, with real WebSocket clients on port 0: Kafka
// predictions equal the offline replay and reach subscribers and metrics; /ingest forwards into the
// input topic and answers with each event's offset; with exactlyOnce, predictions go out in
// transactions. Fails (never skips) without a broker.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import type { Event } from '../../src/events/types.js';
import type { RunningServer } from '../../src/server/serve.js';
import { tempDir } from '../helpers/fixtures.js';
import {
  brokers,
  createInputTopic,
  eventMessages,
  judge,
  loadTestModel,
  MODEL_FILE,
  makeEvents,
  offlineReplay,
  produce,
  readTopic,
  requireBroker,
  type Topics,
  waitForCatchUp,
  waitUntil,
  withAdmin,
} from '../helpers/kafka.js';
import { connect, startTestServer } from '../helpers/serve.js';

type TestServer = RunningServer & { ws: (path: string) => string };

async function kafkaServer(
  name: string,
  partitions: number,
  kafka: Record<string, unknown> = {},
): Promise<{ s: TestServer; t: Topics }> {
  await requireBroker();
  const t = await createInputTopic(name, partitions);
  const s = await startTestServer({
    model: { path: MODEL_FILE },
    state: { store: 'lmdb', path: join(await tempDir('serve-kafka'), 'state') },
    kafka: { brokers, ...t, maxBatch: 200, maxWaitTimeInMs: 100, ...kafka },
  });
  return { s, t };
}

/** Every message `ws` receives, parsed. */
function collect(ws: WebSocket): Array<Record<string, unknown>> {
  const got: Array<Record<string, unknown>> = [];
  ws.on('message', (data) => got.push(JSON.parse(data.toString())));
  return got;
}

async function metric(s: TestServer, line: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? 0 : Number(found.slice(line.length + 1));
}

const canonical = (ps: ReadonlyArray<Record<string, unknown>>) => ps.map((p) => JSON.stringify(p)).sort();

describe('serve with Kafka', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('predicts events of the input topic as the offline replay does, and subscribers, metrics and stats see them', async () => {
    const { s, t } = await kafkaServer('serve-in', 3);
    server = s;
    const ready = await fetch(`${s.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(s.pipeline).toBeUndefined();
    const subscriber = await connect(s.ws('/subscribe'));
    const published = collect(subscriber);

    const events = makeEvents(1200, 60, 5);
    await produce(t.inputTopic, eventMessages(events));
    await waitForCatchUp(t);
    await waitUntil(() => published.length >= events.length, 'the subscriber to get every prediction');

    const model = await loadTestModel();
    const onTopic = await readTopic(t.outputTopic);
    const verdict = judge(await offlineReplay(model, events), onTopic);
    expect(verdict).toMatchObject({ received: events.length, missing: 0, divergent: 0, repeated: 0 });
    // The subscriber got exactly what Kafka has.
    expect(published).toHaveLength(events.length);
    expect(canonical(published)).toEqual(canonical(onTopic.map((m) => JSON.parse(m.value))));

    expect(await metric(s, 'cellstream_predictions_out_total')).toBe(events.length);
    expect(await metric(s, 'cellstream_events_in_total{source="kafka"}')).toBe(events.length);
    expect(await metric(s, 'cellstream_kafka_partitions')).toBe(3);
    // The Kafka health: metrics and the dashboard's /v1/stats.
    expect(await metric(s, 'cellstream_kafka_ready')).toBe(1);
    expect(await metric(s, 'cellstream_kafka_group_member')).toBe(1);
    expect(await metric(s, 'cellstream_kafka_broker_connected')).toBe(1);
    expect(await metric(s, 'cellstream_kafka_consumer_lag{partition="2"}')).toBe(0);
    expect(await metric(s, 'cellstream_kafka_rebalances_total')).toBeGreaterThanOrEqual(1);
    expect(await metric(s, 'cellstream_kafka_restore_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(await metric(s, 'cellstream_kafka_seconds_since_last_commit')).toBeGreaterThanOrEqual(0);
    const stats = (await (await fetch(`${s.url}/v1/stats`)).json()) as {
      totals: { predictions: number };
      kafka: Record<string, unknown>;
    };
    expect(stats.totals.predictions).toBe(events.length);
    expect(stats.kafka).toMatchObject({ ready: true, member: true, partitions: [0, 1, 2], totalLag: 0 });
    subscriber.close();
  });

  it('forwards /ingest events into the input topic, acknowledges each with its offset, and predicts them', async () => {
    const { s, t } = await kafkaServer('serve-fwd', 2);
    server = s;
    const subscriber = await connect(s.ws('/subscribe'));
    const published = collect(subscriber);
    const ingest = await connect(s.ws('/ingest'));
    const answers = collect(ingest);

    const events: Event[] = makeEvents(300, 20, 9);
    for (let i = 0; i < events.length; i += 50) ingest.send(JSON.stringify(events.slice(i, i + 50)));
    // One answer that is not an acknowledgement: a structurally invalid event never reaches Kafka.
    ingest.send(JSON.stringify({ key: 'bad', ts: 1 }));
    await waitUntil(() => answers.length === events.length + 1, 'every event to be answered');

    const acks = answers.slice(0, events.length);
    acks.forEach((a, i) => {
      expect(a).toMatchObject({ accepted: true, key: events[i].key, topic: t.inputTopic });
    });
    expect(answers[events.length]).toMatchObject({ error: { code: 'EVENT_INVALID' } });

    // Each acknowledgement names where the event sits in the input topic.
    const input = await readTopic(t.inputTopic);
    const at = new Map(input.map((m) => [`${m.partition}/${m.offset}`, m]));
    acks.forEach((a, i) => {
      const m = at.get(`${a['partition']}/${a['offset']}`);
      expect(m?.key).toBe(events[i].key);
      expect(JSON.parse(m!.value)).toEqual(events[i]);
    });

    await waitUntil(() => published.length >= events.length, 'the forwarded events to be predicted');
    const model = await loadTestModel();
    const verdict = judge(await offlineReplay(model, events), await readTopic(t.outputTopic));
    expect(verdict).toMatchObject({ received: events.length, missing: 0, divergent: 0, repeated: 0 });
    expect(await metric(s, 'cellstream_events_forwarded_total')).toBe(events.length);
    ingest.close();
    subscriber.close();
  });

  it("one client's large events never fail another's: each produce request stays below Kafka's message limit", async () => {
    const { s, t } = await kafkaServer('serve-fwd-big', 2);
    server = s;
    const large = await connect(s.ws('/ingest'));
    const small = await connect(s.ws('/ingest'));
    const largeAnswers = collect(large);
    const smallAnswers = collect(small);

    // Each event is valid at the edge and fits a frame; together, the ones that wait for the
    // produce request in flight are far more than the broker's message.max.bytes (1 MB).
    const blob = 'x'.repeat(60_000);
    const largeCount = 120;
    const smallEvents: Event[] = [];
    for (let i = 0; i < largeCount; i++) {
      large.send(JSON.stringify({ key: `large-${i % 7}`, ts: i, values: { blob } }));
      if (i % 3 === 0) {
        const event = { key: `small-${i % 5}`, ts: i, features: [i, 1, 0] };
        smallEvents.push(event);
        small.send(JSON.stringify(event));
      }
    }
    await waitUntil(
      () => largeAnswers.length === largeCount && smallAnswers.length === smallEvents.length,
      'every event to be answered',
    );
    smallAnswers.forEach((a, i) => {
      expect(a).toMatchObject({ accepted: true, key: smallEvents[i].key, topic: t.inputTopic });
    });
    for (const a of largeAnswers) expect(a).toMatchObject({ accepted: true, topic: t.inputTopic });
    large.close();
    small.close();
  });

  it('with exactlyOnce, writes predictions in transactions that a read_committed consumer sees once each', async () => {
    const { s, t } = await kafkaServer('serve-eos', 2, { exactlyOnce: true, maxBatch: 100 });
    server = s;
    const events = makeEvents(600, 30, 11);
    await produce(t.inputTopic, eventMessages(events));
    // The group's offsets move only when a transaction commits them with its predictions.
    await waitForCatchUp(t);

    const onTopic = await readTopic(t.outputTopic);
    const verdict = judge(await offlineReplay(await loadTestModel(), events), onTopic);
    expect(verdict).toMatchObject({ received: events.length, missing: 0, divergent: 0, repeated: 0 });
    // Commit markers take offsets of their own: without transactions the partitions would end
    // exactly at the number of predictions.
    const ends = await withAdmin((admin) => admin.fetchTopicOffsets(t.outputTopic));
    const endOffsets = ends.reduce((sum, e) => sum + Number(e.high), 0);
    expect(endOffsets).toBeGreaterThan(events.length);
  });
});
