// `serve` in Kafka mode with `kafka.workers: 2`, against a real broker: two group members on worker
// threads, one server. Subscribers, /metrics, /v1/stats and /v1/keys answer for the whole instance:
// every prediction equals the offline replay, and each key's state is read from whichever worker
// owns it.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import type { RunningServer } from '../../src/server/serve.js';
import { ensureBuilt } from '../helpers/build.js';
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
  waitForCatchUp,
  waitUntil,
} from '../helpers/kafka.js';
import { connect, startTestServer } from '../helpers/serve.js';

type TestServer = RunningServer & { ws: (path: string) => string };

async function metric(s: TestServer, line: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  if (found === undefined) throw new Error(`no ${line} in /metrics`);
  return Number(found.slice(line.length + 1));
}

interface Stats {
  totals: { predictions: number };
  kafka: { ready: boolean; partitions: number[]; workers?: Array<{ partitions: number[] } | null> };
}
const statsOf = async (s: TestServer) => (await (await fetch(`${s.url}/v1/stats`)).json()) as Stats;

describe('serve with Kafka workers', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('two workers answer as one server: subscribers, metrics, stats and /v1/keys', async () => {
    await requireBroker();
    ensureBuilt();
    const t = await createInputTopic('serve-workers', 4);
    const s = await startTestServer({
      model: { path: MODEL_FILE },
      state: { store: 'lmdb', path: join(await tempDir('serve-workers'), 'state') },
      // Standby state on: each worker follows its sibling's partitions in its own directory, and the
      // look-ups below must still come from the owner.
      kafka: { brokers, ...t, maxBatch: 200, maxWaitTimeInMs: 100, workers: 2, standbys: 1 },
    });
    server = s;
    // Both members joined and each owns partitions before the events come (see kafka-workers.test.ts).
    await waitUntil(async () => {
      const owned = ((await statsOf(s)).kafka.workers ?? []).map((w) => w?.partitions ?? []);
      return (
        owned.length === 2 && owned.every((ps) => ps.length > 0) && owned.flat().sort().join() === '0,1,2,3'
      );
    }, 'both workers to own partitions');
    const subscriber: WebSocket = await connect(s.ws('/subscribe'));
    const published: unknown[] = [];
    subscriber.on('message', (data) => published.push(JSON.parse(data.toString())));

    const events = makeEvents(1200, 60, 7);
    await produce(t.inputTopic, eventMessages(events));
    await waitForCatchUp(t);
    await waitUntil(() => published.length >= events.length, 'the subscriber to get every prediction');

    const expected = await offlineReplay(await loadTestModel(), events);
    const verdict = judge(expected, await readTopic(t.outputTopic));
    expect(verdict).toMatchObject({ received: events.length, missing: 0, divergent: 0, repeated: 0 });
    expect(published).toHaveLength(events.length);

    // Counted once per event over both workers.
    expect(await metric(s, 'cellstream_predictions_out_total')).toBe(events.length);
    expect(await metric(s, 'cellstream_events_in_total{source="kafka"}')).toBe(events.length);
    expect(await metric(s, 'cellstream_kafka_partitions')).toBe(4);
    expect(await metric(s, 'cellstream_kafka_ready')).toBe(1);
    expect(await metric(s, 'cellstream_kafka_group_member')).toBe(1);
    expect(await metric(s, 'cellstream_kafka_rebalances_total')).toBeGreaterThanOrEqual(2);
    expect(await metric(s, 'cellstream_kafka_restore_seconds_count')).toBeGreaterThanOrEqual(2);
    for (const p of [0, 1, 2, 3])
      expect(await metric(s, `cellstream_kafka_consumer_lag{partition="${p}"}`)).toBe(0);
    const stats = await statsOf(s);
    expect(stats.totals.predictions).toBe(events.length);
    expect(stats.kafka).toMatchObject({ ready: true, partitions: [0, 1, 2, 3] });
    expect(await metric(s, 'cellstream_state_store_keys')).toBeGreaterThanOrEqual(expected.size);

    // Every key's state, whichever worker owns it, is its last step.
    for (const [key, ps] of expected) {
      const res = await fetch(`${s.url}/v1/keys/${encodeURIComponent(key)}`);
      expect(res.status, key).toBe(200);
      const body = (await res.json()) as { seq: number; prediction?: { seq: number } };
      expect(body.seq).toBe(ps[ps.length - 1]!.seq);
      expect(body.prediction?.seq).toBe(body.seq);
    }
    expect((await fetch(`${s.url}/v1/keys/never-seen`)).status).toBe(404);

    // Each worker is a standby for what its sibling owns; the instance owns every partition, so
    // none is a standby of the instance's.
    const health = (await statsOf(s)).kafka as unknown as {
      standbyPartitions: number[];
      workers: Array<{ partitions: number[]; standbyPartitions: number[] }>;
    };
    expect(health.standbyPartitions).toEqual([]);
    for (const [i, w] of health.workers.entries()) {
      const sibling = health.workers[1 - i]!;
      expect(w.standbyPartitions, `worker ${i}`).toEqual([...sibling.partitions].sort((a, b) => a - b));
    }
    subscriber.close();
  }, 300_000);
});
