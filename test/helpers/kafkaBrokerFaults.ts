// The broker's loss under load: `cellstream kafka` instances consume while the test's own broker
// (test/helpers/ownBroker.ts) is SIGKILLed and restarted on its data, or paused (SIGSTOP/SIGCONT).
// Shared by the CI tests (small sizes) and `npm run kafka:faults` (larger ones); every prediction
// is checked against the offline replay.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KafkaHealthSnapshot } from '../../src/pipelines/kafkaHealth.js';
import { ensureBuilt } from './build.js';
import {
  createInputTopic,
  eventMessages,
  groupLag,
  judge,
  loadTestModel,
  makeEvents,
  offlineReplay,
  produce,
  readTopic,
  type Topics,
  type Verdict,
  waitForCatchUp,
  waitUntil,
  withAdmin,
} from './kafka.js';
import { type ChildInstance, child } from './kafkaFaults.js';
import type { OwnBroker } from './ownBroker.js';

export interface BrokerFaultOptions {
  readonly events: number;
  readonly keys: number;
  readonly partitions: number;
  readonly instances: number;
  readonly exactlyOnce: boolean;
  /** `kill`: SIGKILL, then restart on its data; `pause`: SIGSTOP, then SIGCONT. */
  readonly fault: 'kill' | 'pause';
  readonly outages: number;
  /** How long the broker stays away each time, ms. */
  readonly downMs: number;
  readonly sessionTimeout: number;
  readonly heartbeatInterval: number;
  /** Events per batch (and transaction): small, so the broker dies during commits. */
  readonly batch: number;
  /** Each restore on assignment takes at least this long (CELLSTREAM_FAULT_SLOW_RESTORE_MS). */
  readonly slowRestoreMs?: number;
  readonly stallTimeoutMs?: number;
  /** Runs while the broker is away (after `downMs / 2`), e.g. to probe the health endpoints. */
  readonly whileDown?: (instances: readonly ChildInstance[]) => Promise<void>;
  /** Runs once the broker is back and the group has resumed. */
  readonly afterResume?: (instances: readonly ChildInstance[]) => Promise<void>;
}

export interface BrokerFaultResult extends Verdict {
  readonly events: number;
  readonly outages: number;
  /** Predictions a read_committed consumer received per distinct (key, seq); 1 means exactly once. */
  readonly deliveriesPerPrediction: number;
  readonly deadLetters: number;
  readonly lag: bigint;
  /** Per outage: from the broker's port accepting connections again (or SIGCONT) to the group's first new committed batch, s. */
  readonly resumeSeconds: readonly number[];
  /**
   * Per outage: from the broker's return (as for `resumeSeconds`) to the first prediction sent after
   * it that a `read_committed` reader finds on the output topic (by the record's timestamp, set by
   * the instance's producer when it sent it; its batch committed within the same batch), s.
   */
  readonly firstPredictionSeconds: readonly number[];
  /** Per outage (kill): from starting the broker again on its data to its port accepting connections, s. */
  readonly brokerRestartSeconds: readonly number[];
  /** Summed over the instances at the end, from their /v1/kafka. */
  readonly crashes: number;
  readonly rejoins: number;
  readonly resyncs: number;
  /** Instances that exited by themselves (none may). */
  readonly exited: number;
  readonly seconds: number;
}

/** The group's committed offsets summed over `topic`'s partitions; undefined while Kafka does not answer. */
async function committedTotal(t: Topics): Promise<bigint | undefined> {
  try {
    return await withAdmin(async (admin) => {
      const [c] = await admin.fetchOffsets({ groupId: t.groupId, topics: [t.inputTopic] });
      return c.partitions.reduce((n, p) => n + (BigInt(p.offset) > 0n ? BigInt(p.offset) : 0n), 0n);
    });
  } catch {
    return undefined;
  }
}

async function healthOf(instance: ChildInstance): Promise<KafkaHealthSnapshot | undefined> {
  try {
    const res = await fetch(`${instance.http}/v1/kafka`);
    return (await res.json()) as KafkaHealthSnapshot;
  } catch {
    return undefined;
  }
}

export async function brokerFaultScenario(
  broker: OwnBroker,
  name: string,
  o: BrokerFaultOptions,
): Promise<BrokerFaultResult> {
  const started = performance.now();
  ensureBuilt();
  const model = await loadTestModel();
  const t = await createInputTopic(name, o.partitions);
  const events = makeEvents(o.events, o.keys, 29);
  const messages = eventMessages(events);
  const dirs = await Promise.all(
    Array.from({ length: o.instances }, () => mkdtemp(join(tmpdir(), 'cellstream-broker-faults-'))),
  );
  const launch = (i: number) =>
    child(t, dirs[i], o.exactlyOnce, {
      sessionTimeout: o.sessionTimeout,
      heartbeatInterval: o.heartbeatInterval,
      args: [
        '--batch',
        String(o.batch),
        ...(o.stallTimeoutMs === undefined ? [] : ['--stall-timeout', String(o.stallTimeoutMs)]),
      ],
      env: o.slowRestoreMs ? { CELLSTREAM_FAULT_SLOW_RESTORE_MS: String(o.slowRestoreMs) } : {},
    });
  const instances: ChildInstance[] = [];
  const resumeSeconds: number[] = [];
  /** Per outage, the broker's return on the wall clock (the records' timestamps are on it). */
  const backAt: number[] = [];
  const brokerRestartSeconds: number[] = [];
  let figures = { crashes: 0, rejoins: 0, resyncs: 0, exited: 0 };
  try {
    instances.push(...(await Promise.all(Array.from({ length: o.instances }, (_, i) => launch(i)))));
    const chunk = Math.ceil(messages.length / (o.outages + 1));
    let sent = 0;
    for (let f = 0; f < o.outages; f++) {
      const before = (await committedTotal(t)) ?? 0n;
      await produce(t.inputTopic, messages.slice(sent, sent + chunk));
      sent += chunk;
      // Under load: part of this chunk is committed, the rest still waits.
      await waitUntil(
        async () => ((await committedTotal(t)) ?? 0n) - before >= BigInt(Math.ceil(chunk / 4)),
        `progress before outage ${f + 1}`,
      );
      const atFault = (await committedTotal(t)) ?? 0n;
      if (o.fault === 'kill') await broker.kill();
      else await broker.pause();
      const downStarted = Date.now();
      if (o.whileDown) {
        await new Promise((r) => setTimeout(r, o.downMs / 2));
        await o.whileDown(instances);
      }
      await new Promise((r) => setTimeout(r, Math.max(0, o.downMs - (Date.now() - downStarted))));
      const restartStarted = performance.now();
      let back: number;
      if (o.fault === 'kill') {
        // Back when its port accepts connections again (start.sh's own check comes later).
        back = await broker.restart();
        brokerRestartSeconds.push((back - restartStarted) / 1000);
      } else {
        await broker.resume();
        back = performance.now();
      }
      backAt.push(Date.now() - (performance.now() - back));
      // The chunk may have been committed whole before the outage: then the next one shows the resume.
      if (atFault >= BigInt(sent)) {
        await produce(t.inputTopic, messages.slice(sent, sent + Math.min(chunk, 50)));
        sent += Math.min(chunk, 50);
      }
      await waitUntil(
        async () => ((await committedTotal(t)) ?? 0n) > atFault,
        `the first committed batch after outage ${f + 1}`,
        240_000,
      );
      resumeSeconds.push((performance.now() - back) / 1000);
      await o.afterResume?.(instances);
    }
    await produce(t.inputTopic, messages.slice(sent));
    await waitForCatchUp(t, 300_000);
    const healths = await Promise.all(instances.map(healthOf));
    figures = {
      crashes: healths.reduce((n, h) => n + (h?.crashes ?? 0), 0),
      rejoins: healths.reduce((n, h) => n + (h?.rejoins ?? 0), 0),
      resyncs: healths.reduce((n, h) => n + (h?.resyncs ?? 0), 0),
      exited: instances.filter((i) => i.exitCode() !== undefined).length,
    };
  } catch (err) {
    // Stop what runs, but report the scenario's own failure, not a stop that failed because of it.
    for (const instance of instances) {
      if (instance.exitCode() === undefined) await instance.stop().catch(() => {});
    }
    // Every instance's log, to tell how the scenario came to fail.
    const logs = join(tmpdir(), `cellstream-broker-faults-${t.inputTopic}.log`);
    await writeFile(logs, instances.map((instance, i) => `== instance ${i}\n${instance.log()}`).join('\n'));
    if (err instanceof Error) err.message += ` (instance logs: ${logs})`;
    throw err;
  }
  for (const instance of instances) {
    if (instance.exitCode() === undefined) await instance.stop();
  }
  const lag = await groupLag(t.groupId, t.inputTopic);
  const received = await readTopic(t.outputTopic);
  const verdict = judge(await offlineReplay(model, events), received);
  const firstPredictionSeconds = backAt.map((at) => {
    let first = Number.POSITIVE_INFINITY;
    for (const m of received)
      if (m.timestamp !== undefined && m.timestamp >= at && m.timestamp < first) first = m.timestamp;
    return Number.isFinite(first) ? (first - at) / 1000 : Number.NaN;
  });
  const deadLetters = (await readTopic(t.deadLetterTopic)).length;
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  const distinct = verdict.received - verdict.divergent - verdict.repeated;
  return {
    ...verdict,
    events: o.events,
    outages: o.outages,
    deliveriesPerPrediction: distinct > 0 ? (verdict.received - verdict.divergent) / distinct : 0,
    deadLetters,
    lag,
    resumeSeconds,
    firstPredictionSeconds,
    brokerRestartSeconds,
    ...figures,
    seconds: (performance.now() - started) / 1000,
  };
}
