// The consumer-crash policy against a real broker: a consumer that loses its membership (the event
// loop blocked past the session timeout, so the broker drops the member and the next offset commit
// fails with "The coordinator is not aware of this member", which kafkajs does not restart after)
// rejoins with a new consumer, state kept — or, by policy or once out of rejoins, the pipeline
// reports KAFKA_CONSUMER_LOST so that the process exits non-zero.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KafkaConsumerLostError } from '../../src/errors.js';
import { type KafkaPipeline, startKafkaPipeline } from '../../src/pipelines/kafkaPipeline.js';
import {
  brokers,
  createInputTopic,
  eventMessages,
  judge,
  kafkaClientUnderTest,
  loadTestModel,
  makeEvents,
  offlineReplay,
  produce,
  readTopic,
  requireBroker,
  waitForCatchUp,
  waitUntil,
  withAdmin,
} from '../helpers/kafka.js';

const SESSION_TIMEOUT = 6000;

/** Blocks the event loop (no timers, no heartbeats), as a long GC pause or a starved CPU would. */
function blockEventLoop(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const dirs: string[] = [];
let pipeline: KafkaPipeline | undefined;
afterEach(async () => {
  await pipeline?.stop();
  pipeline = undefined;
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function start(name: string, policy: { onConsumerCrash?: 'rejoin' | 'exit'; maxRejoins?: number }) {
  await requireBroker();
  const model = await loadTestModel();
  const t = await createInputTopic(name, 2);
  const dir = await mkdtemp(join(tmpdir(), 'cellstream-crash-'));
  dirs.push(dir);
  let blocked = false;
  const lost: KafkaConsumerLostError[] = [];
  pipeline = await startKafkaPipeline({
    model,
    brokers,
    ...t,
    stateDir: dir,
    maxBatch: 100,
    maxWaitTimeInMs: 100,
    sessionTimeout: SESSION_TIMEOUT,
    heartbeatInterval: 500,
    logLevel: 'nothing',
    client: kafkaClientUnderTest,
    ...policy,
    onBatch: () => {
      if (blocked) return;
      blocked = true;
      // Past the session timeout with a margin for the broker's session check and the last
      // heartbeat (at most heartbeatInterval before the block).
      blockEventLoop(SESSION_TIMEOUT + 2500);
    },
    onLost: (err) => lost.push(err),
  });
  return { model, t, lost, running: pipeline };
}

describe('Kafka consumer crash policy', () => {
  it('rejoin (the default): a new consumer joins, state kept; every prediction right, lag 0', async () => {
    const { model, t, running } = await start('crash-rejoin', {});
    const events = makeEvents(2000, 200, 31);
    await produce(t.inputTopic, eventMessages(events));
    await waitForCatchUp(t, 180_000);
    const h = running.health.snapshot(t.groupId);
    expect(h.rejoins).toBeGreaterThanOrEqual(1);
    expect(h.crashes).toBeGreaterThanOrEqual(1);
    await waitUntil(() => running.health.notReadyReason(t.groupId) === undefined, 'ready again', 60_000);
    const verdict = judge(await offlineReplay(model, events), await readTopic(t.outputTopic));
    expect(verdict).toMatchObject({ missing: 0, divergent: 0 });
    // Neither the crashed consumer nor its replacement outlives stop(): the group is left empty.
    await running.stop();
    const members = await withAdmin(
      async (admin) => (await admin.describeGroups([t.groupId])).groups[0].members.length,
    );
    expect(members).toBe(0);
  }, 240_000);

  it.each([
    { policy: 'exit', settings: { onConsumerCrash: 'exit' as const } },
    { policy: 'rejoin with maxRejoins 0', settings: { maxRejoins: 0 } },
  ])(
    '$policy: the pipeline reports KAFKA_CONSUMER_LOST, /readyz says so, and stop() still works',
    async ({ settings }) => {
      const { t, lost, running } = await start('crash-exit', settings);
      await produce(t.inputTopic, eventMessages(makeEvents(500, 50, 37)));
      const err = await running.lost.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KafkaConsumerLostError);
      expect((err as KafkaConsumerLostError).code).toBe('KAFKA_CONSUMER_LOST');
      expect((err as Error).message).toMatch(/restart the process/);
      expect(lost).toHaveLength(1);
      expect(running.health.notReadyReason(t.groupId)).toBe((err as Error).message);
      expect(running.health.snapshot(t.groupId).rejoins).toBe(0);
    },
    240_000,
  );
});
