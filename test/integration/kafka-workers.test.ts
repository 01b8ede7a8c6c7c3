// `kafka.workers` / `--workers N` against a real broker: N group members on worker threads of one
// process, each its own consumer, producers and LMDB directory, answering as one instance. Every
// prediction is checked against the offline replay; a SIGKILLed and restarted instance keeps the
// delivery rules; the metrics count every worker's batches; a crashed worker fails the process.
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Event, Prediction } from '../../src/events/types.js';
import type { Model } from '../../src/model/types.js';
import { type KafkaInstance, startKafkaInstance } from '../../src/pipelines/kafkaWorkers.js';
import { ensureBuilt } from '../helpers/build.js';
import {
  brokers,
  createInputTopic,
  deliveryModes,
  eventMessages,
  groupLag,
  judge,
  kafkaClientUnderTest,
  loadTestModel,
  makeEvents,
  offlineReplay,
  produce,
  readTopic,
  requireBroker,
  type Topics,
  waitForCatchUp,
  waitUntil,
} from '../helpers/kafka.js';
import { child } from '../helpers/kafkaFaults.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function stateDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cellstream-workers-'));
  dirs.push(d);
  return d;
}

/**
 * What every test here starts from: a broker, the built CLI, the test model, a 4-partition input
 * topic named `name`, `count` events over `keys` keys and a state directory.
 */
async function setUp(name: string, count: number, keys: number, seed: number) {
  await requireBroker();
  ensureBuilt();
  const model = await loadTestModel();
  const t = await createInputTopic(name, 4);
  const events: Event[] = makeEvents(count, keys, seed);
  return { model, t, events, dir: await stateDir() };
}

/** A metric's value (summed over its labels) in a Prometheus text exposition. */
function metric(text: string, name: string): number {
  let sum = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      seen = true;
    }
  }
  if (!seen) throw new Error(`no metric ${name} in:\n${text}`);
  return sum;
}

/** The last prediction of each key in the offline replay. */
function lastByKey(expected: Map<string, Prediction[]>): Map<string, Prediction> {
  const last = new Map<string, Prediction>();
  for (const [key, ps] of expected) if (ps.length > 0) last.set(key, ps[ps.length - 1]!);
  return last;
}

describe.each(deliveryModes)('Kafka workers in one process ($mode)', ({ exactlyOnce }) => {
  it('two workers share the partitions, predict as the offline replay, and answer look-ups for the whole instance', async () => {
    const { model, t, events, dir } = await setUp(exactlyOnce ? 'workers-eos' : 'workers', 3000, 200, 31);
    let batchEvents = 0;
    const instance: KafkaInstance = await startKafkaInstance({
      model,
      brokers,
      ...t,
      stateDir: dir,
      exactlyOnce,
      workers: 2,
      maxBatch: 200,
      maxWaitTimeInMs: 100,
      logLevel: 'nothing',
      client: kafkaClientUnderTest,
      onBatch: (r) => {
        batchEvents += r.events;
      },
    });
    let stopped = false;
    try {
      expect(instance.workers).toBe(2);
      // Both workers in the group, the four partitions split between them, none twice; the events
      // come after, so each worker restores and steps its own (a partition's state is restored on
      // its first batch, so one moved by a rebalance after the stream ended would answer stale).
      const split = () => {
        const owned = (instance.health.snapshot(t.groupId).workers ?? []).map((w) => w?.partitions ?? []);
        const all = owned.flat().sort();
        return owned.length === 2 && owned.every((ps) => ps.length > 0) && all.join() === '0,1,2,3';
      };
      await waitUntil(split, 'both workers to own partitions, each its own');
      expect(instance.partitions()).toEqual([0, 1, 2, 3]);
      await produce(t.inputTopic, eventMessages(events));
      await waitForCatchUp(t);
      const expected = await offlineReplay(model, events);
      await waitUntil(() => instance.health.notReadyReason(t.groupId) === undefined, 'ready');
      expect(instance.joined()).toBe(true);
      const snapshot = instance.health.snapshot(t.groupId);
      // Summed over the workers: each joined at least once and restored its partitions.
      expect(snapshot.rebalances).toBeGreaterThanOrEqual(2);
      expect(snapshot.restores).toBeGreaterThanOrEqual(2);
      expect(snapshot.workers!.every((w) => (w?.restores ?? 0) >= 1)).toBe(true);
      // Each worker's state answers for its own keys: every key's record is its last step.
      const last = lastByKey(expected);
      const keys = [...last.keys()];
      const records = await instance.lookup(keys);
      records.forEach((r, i) => {
        expect(r, keys[i]).toBeDefined();
        expect(r!.seq).toBe(last.get(keys[i]!)!.seq);
      });
      expect(await instance.size()).toBeGreaterThanOrEqual(keys.length);
      // Each worker has its own LMDB directory.
      expect(existsSync(join(dir, 'worker-0'))).toBe(true);
      expect(existsSync(join(dir, 'worker-1'))).toBe(true);
      await instance.stop();
      stopped = true;
      expect(batchEvents).toBe(events.length);
      expect(instance.stats.predictions).toBe(events.length);
      const verdict = judge(expected, await readTopic(t.outputTopic));
      expect(verdict.missing).toBe(0);
      expect(verdict.divergent).toBe(0);
      expect(verdict.completeKeys).toBe(expected.size);
      if (exactlyOnce) expect(verdict.repeated).toBe(0);
    } finally {
      if (!stopped) await instance.stop();
    }
  }, 300_000);
});

describe('Kafka workers: graceful stop', () => {
  it('stop() drains every worker: all each one sent is committed, and a restart completes the stream', async () => {
    const { model, t, events, dir } = await setUp('workers-drain', 12_000, 300, 43);
    const start = () =>
      startKafkaInstance({
        model,
        brokers,
        ...t,
        stateDir: dir,
        workers: 2,
        maxBatch: 100,
        maxWaitTimeInMs: 100,
        // Nothing commits on its own before the end of the stream: what the workers hold when
        // stopped is made durable and committed by the stop, or not at all.
        commitIntervalMs: 600_000,
        logLevel: 'nothing',
        client: kafkaClientUnderTest,
      });
    let instance = await start();
    await produce(t.inputTopic, eventMessages(events));
    await waitUntil(
      async () => (await readTopic(t.outputTopic)).length >= 2000,
      'predictions from both workers before the stop',
    );
    await instance.stop();
    // At-least-once sends before it commits: every distinct prediction out is of a committed event.
    const out = judge(await offlineReplay(model, events), await readTopic(t.outputTopic));
    expect(out.divergent).toBe(0);
    const committed = BigInt(events.length) - (await groupLag(t.groupId, t.inputTopic));
    expect(BigInt(out.received - out.repeated)).toBe(committed);

    instance = await start();
    await waitForCatchUp(t);
    await instance.stop();
    const verdict = judge(await offlineReplay(model, events), await readTopic(t.outputTopic));
    expect(verdict.missing).toBe(0);
    expect(verdict.divergent).toBe(0);
  }, 300_000);
});

describe('Kafka workers: a partition back on a worker whose state is behind', () => {
  it.each(deliveryModes)(
    '$mode: the worker restores from its own checkpoint, never steps on its stale state',
    async ({ exactlyOnce }) => {
      const { model, t, events, dir } = await setUp(
        exactlyOnce ? 'workers-stale-eos' : 'workers-stale',
        6000,
        120,
        47,
      );
      const messages = eventMessages(events);
      const options = {
        model,
        brokers,
        ...t,
        exactlyOnce,
        maxBatch: 200,
        maxWaitTimeInMs: 100,
        logLevel: 'nothing' as const,
        client: kafkaClientUnderTest,
      };
      const third = messages.length / 3;
      const run = async (part: typeof messages, start: () => Promise<{ stop(): Promise<void> }>) => {
        const running = await start();
        await produce(t.inputTopic, part);
        await waitForCatchUp(t);
        await running.stop();
      };
      // 1. Two workers: each keeps the state of its partitions in its own directory.
      await run(messages.slice(0, third), () =>
        startKafkaInstance({ ...options, stateDir: dir, workers: 2 }),
      );
      // 2. Worker 1's directory alone takes every partition on: worker 0's partitions move on
      //    without it, so its directory falls behind the changelog.
      await run(messages.slice(third, 2 * third), () =>
        startKafkaInstance({ ...options, stateDir: join(dir, 'worker-1') }),
      );
      // 3. Two workers again: whatever worker 0 owns now, its own state of it is behind.
      await run(messages.slice(2 * third), () =>
        startKafkaInstance({ ...options, stateDir: dir, workers: 2 }),
      );
      const verdict = judge(await offlineReplay(model, events), await readTopic(t.outputTopic));
      expect(verdict.missing).toBe(0);
      expect(verdict.divergent).toBe(0);
      expect(verdict.completeKeys).toBe(new Set(events.map((e) => e.key)).size);
      if (exactlyOnce) expect(verdict.repeated).toBe(0);
    },
    300_000,
  );
});

describe('cellstream kafka --workers 2', () => {
  it.each(deliveryModes)(
    '$mode: SIGKILL mid-stream and a restart keep the delivery rules; /metrics counts every worker',
    async ({ exactlyOnce }) => {
      const { model, t, events, dir } = await setUp(
        exactlyOnce ? 'workers-kill-eos' : 'workers-kill',
        6000,
        300,
        37,
      );
      const messages = eventMessages(events);
      const half = messages.length / 2;

      // A first run of the first half, stopped gracefully: /metrics sums both workers' batches.
      let instance = await child(t, dir, exactlyOnce, { args: ['--workers', '2'] });
      const metricsText = async () => (await fetch(`${instance.http}/metrics`)).text();
      await produce(t.inputTopic, messages.slice(0, half));
      await waitForCatchUp(t);
      // At least every event: a worker joining after the first batches makes a rebalance, whose
      // redelivered events (at-least-once; aborted ones exactly-once) are counted again.
      await waitUntil(
        async () => metric(await metricsText(), 'cellstream_events_in_total') >= half,
        'every event of the first half counted',
      );
      const text = await metricsText();
      // Two members joined (at least one rebalance each); every partition's lag is reported.
      expect(metric(text, 'cellstream_kafka_rebalances_total')).toBeGreaterThanOrEqual(2);
      expect(metric(text, 'cellstream_kafka_restore_seconds_count')).toBeGreaterThanOrEqual(2);
      expect(text.match(/^cellstream_kafka_consumer_lag\{/gm)).toHaveLength(4);
      expect(metric(text, 'cellstream_kafka_ready')).toBe(1);
      expect(metric(text, 'cellstream_predictions_out_total')).toBeGreaterThanOrEqual(half);
      expect(instance.log()).toContain('"workers":2');
      await instance.stop();

      // The second half: killed with part of it processed, then started again on the same state.
      instance = await child(t, dir, exactlyOnce, { args: ['--workers', '2'] });
      const before = (await readTopic(t.outputTopic)).length;
      await produce(t.inputTopic, messages.slice(half));
      await waitUntil(
        async () => (await readTopic(t.outputTopic, { readUncommitted: true })).length - before >= 600,
        'progress before the kill',
      );
      await instance.kill();
      instance = await child(t, dir, exactlyOnce, { args: ['--workers', '2'] });
      await waitForCatchUp(t, 300_000);
      await instance.stop();

      const verdict = judge(await offlineReplay(model, events), await readTopic(t.outputTopic));
      expect(verdict.missing).toBe(0);
      expect(verdict.divergent).toBe(0);
      if (exactlyOnce) expect(verdict.repeated).toBe(0);
    },
    600_000,
  );

  /** A new instance of two workers on the same state completes the stream: none missing or stepped twice. */
  async function restartDeliversEverything(model: Model, t: Topics, events: Event[], dir: string) {
    const instance = await child(t, dir, false, { args: ['--workers', '2'] });
    await waitForCatchUp(t);
    await instance.stop();
    const verdict = judge(await offlineReplay(model, events), await readTopic(t.outputTopic));
    expect(verdict.missing).toBe(0);
    expect(verdict.divergent).toBe(0);
  }

  it('a worker whose stop never ends is terminated, so the process still exits; a restart delivers everything', async () => {
    const { model, t, events, dir } = await setUp('workers-stuck-stop', 600, 60, 43);
    const stuck = await child(t, dir, false, {
      args: ['--workers', '2'],
      env: { CELLSTREAM_FAULT_WORKER_STUCK_STOP: '1' },
    });
    await produce(t.inputTopic, eventMessages(events));
    await waitForCatchUp(t);
    // Exits (non-zero: a worker did not stop cleanly) instead of hanging on the stuck worker.
    await expect(stuck.stop()).rejects.toThrow(/exited with [1-9]/);
    // The bound with the test instances' 6 s session timeout: 2 × 6 s + 60 s.
    expect(stuck.log()).toContain('worker 1 did not stop within 72000 ms and was terminated');

    await restartDeliversEverything(model, t, events, dir);
  }, 300_000);

  it('a worker that crashes fails the process with KAFKA_WORKER_CRASHED after the others stop; a restart delivers everything', async () => {
    const { model, t, events, dir } = await setUp('workers-crash', 2000, 200, 41);
    const crashing = await child(t, dir, false, {
      args: ['--workers', '2'],
      env: { CELLSTREAM_FAULT_WORKER_CRASH: '1' },
    });
    await produce(t.inputTopic, eventMessages(events));
    await waitUntil(() => crashing.exitCode() !== undefined, 'the process to exit after the crash');
    expect(crashing.exitCode()).not.toBe(0);
    expect(crashing.log()).toContain('"event":"worker-crashed"');
    expect(crashing.log()).toContain('KAFKA_WORKER_CRASHED');
    expect(crashing.log()).toContain('injected crash of worker 1');

    await restartDeliversEverything(model, t, events, dir);
  }, 300_000);
});

describe('Kafka workers in one process: a start that fails', () => {
  it('rejects, each worker having closed what it had connected before the failure', async () => {
    const { model, t, dir } = await setUp('workers-refused', 0, 1, 1);
    // A file where the state directory should be: every worker's LMDB fails to open, after the
    // worker has connected its producer. A connection left open kept the worker thread alive, and
    // the instance, waiting for it to stop, never answered.
    const notADir = join(dir, 'state-file');
    await writeFile(notADir, 'not a directory');
    const started = startKafkaInstance({
      model,
      brokers,
      ...t,
      stateDir: notADir,
      workers: 2,
      maxWaitTimeInMs: 100,
      logLevel: 'nothing',
      client: kafkaClientUnderTest,
    });
    await expect(started).rejects.toThrow(/worker-0|worker-1|ENOTDIR|not a directory/i);
  }, 120_000);
});
