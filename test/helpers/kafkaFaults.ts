// Fault scenarios of the Kafka pipeline, shared by the CI tests (small sizes) and
// `npm run kafka:faults` (large ones). Each runs instances against a real broker, injects faults
// under load, and checks every prediction against the offline replay.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Event } from '../../src/events/types.js';
import type { Model } from '../../src/model/types.js';
import { type KafkaPipeline, startKafkaPipeline } from '../../src/pipelines/kafkaPipeline.js';
import { ensureBuilt, ROOT } from './build.js';
import {
  brokers,
  createInputTopic,
  eventMessages,
  groupLag,
  judge,
  kafkaClientUnderTest,
  kafkaCommandArgs,
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

export interface ScenarioOptions {
  readonly events: number;
  readonly keys: number;
  readonly partitions: number;
  readonly instances: number;
  /** Faults to inject (stops, kills). */
  readonly faults: number;
  readonly exactlyOnce: boolean;
}

export interface ScenarioResult extends Verdict {
  readonly events: number;
  readonly faults: number;
  /** Predictions a read_committed consumer received per distinct (key, seq); 1 means exactly once. */
  readonly deliveriesPerPrediction: number;
  readonly deadLetters: number;
  readonly lag: bigint;
  readonly seconds: number;
  /** Where every child instance's log went, when the verdict found events missing or wrong. */
  readonly logs?: string;
}

/** One running pipeline instance: in this process, or a `cellstream kafka` child process. */
interface Instance {
  stop(): Promise<void>;
  kill(): Promise<void>;
  /** A child's stderr (its JSON log lines) so far. */
  log?(): string;
}

/** A `cellstream kafka` child process. */
export interface ChildInstance extends Instance {
  /** Its health endpoints' base URL (`--http-port 0`: a free port). */
  readonly http: string;
  /** Its stderr so far (JSON lifecycle lines and kafkajs logs). */
  log(): string;
  /** Its exit code once it exited, else undefined. */
  exitCode(): number | null | undefined;
}

export interface ChildOptions {
  readonly sessionTimeout?: number;
  readonly heartbeatInterval?: number;
  /** Extra command-line arguments. */
  readonly args?: readonly string[];
  /** Extra environment variables. */
  readonly env?: NodeJS.ProcessEnv;
}

const SESSION = { sessionTimeout: 6000, heartbeatInterval: 500 };

async function inProcess(model: Model, t: Topics, stateDir: string, exactlyOnce: boolean): Promise<Instance> {
  const pipeline: KafkaPipeline = await startKafkaPipeline({
    model,
    brokers,
    ...t,
    stateDir,
    exactlyOnce,
    maxBatch: 200,
    maxWaitTimeInMs: 100,
    ...SESSION,
    logLevel: 'nothing',
    client: kafkaClientUnderTest,
  });
  return {
    stop: () => pipeline.stop(),
    kill: () => {
      throw new Error('an in-process instance cannot be killed');
    },
  };
}

export async function child(
  t: Topics,
  stateDir: string,
  exactlyOnce: boolean,
  o: ChildOptions = {},
): Promise<ChildInstance> {
  const args = [
    join(ROOT, 'bin', 'cellstream.js'),
    ...kafkaCommandArgs(t, [
      '--dead-letter-topic',
      t.deadLetterTopic,
      '--changelog-topic',
      t.changelogTopic,
      '--state',
      stateDir,
      '--batch',
      '200',
      '--session-timeout',
      String(o.sessionTimeout ?? SESSION.sessionTimeout),
      '--heartbeat-interval',
      String(o.heartbeatInterval ?? SESSION.heartbeatInterval),
      // Several instances on one host: each its own free port for the health endpoints.
      '--http-port',
      '0',
      ...(exactlyOnce ? ['--exactly-once'] : []),
      ...(o.args ?? []),
    ]),
  ];
  const proc: ChildProcess = spawn(process.execPath, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1', ...o.env },
  });
  let log = '';
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code) => {
      exitCode = code;
      resolve(code);
    }),
  );
  await new Promise<void>((resolve, reject) => {
    proc.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('"event":"started"')) resolve();
    });
    void exited.then((code) => reject(new Error(`instance exited with ${code} before starting:\n${log}`)));
  });
  const http = /"event":"http","url":"([^"]+)"/.exec(log)?.[1] ?? '';
  return {
    http,
    log: () => log,
    exitCode: () => exitCode,
    async stop() {
      if (exitCode !== undefined)
        throw new Error(`instance had exited with ${exitCode}:\n${log.slice(-4000)}`);
      proc.kill('SIGTERM');
      // A hang guard: an instance that does not exit after SIGTERM fails the test, never hangs it.
      const timer = setTimeout(() => proc.kill('SIGKILL'), 90_000);
      const code = await exited;
      clearTimeout(timer);
      if (code !== 0) throw new Error(`instance exited with ${code} on SIGTERM:\n${log.slice(-4000)}`);
    },
    async kill() {
      proc.kill('SIGKILL');
      await exited;
    },
  };
}

async function outputCount(topic: string): Promise<bigint> {
  return withAdmin(async (admin) =>
    (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + BigInt(p.high), 0n),
  );
}

/**
 * Runs `instances` instances over `events` produced in `faults + 1` chunks; after each chunk is
 * partly processed, `fault` hits one instance (graceful stop, or SIGKILL) and it is started again.
 * Then waits for the group to catch up, stops everything, and judges the output.
 */
async function runScenario(name: string, o: ScenarioOptions, kind: 'stop' | 'kill'): Promise<ScenarioResult> {
  const started = performance.now();
  const model = await loadTestModel();
  if (kind === 'kill') ensureBuilt();
  const t = await createInputTopic(name, o.partitions);
  const events: Event[] = makeEvents(o.events, o.keys, 17);
  const messages = eventMessages(events);
  const dirs = await Promise.all(
    Array.from({ length: o.instances }, () => mkdtemp(join(tmpdir(), 'cellstream-faults-'))),
  );
  const start = (i: number): Promise<Instance> =>
    kind === 'kill' ? child(t, dirs[i], o.exactlyOnce) : inProcess(model, t, dirs[i], o.exactlyOnce);
  const instances: Instance[] = [];
  // Every instance started, killed ones included: their logs tell how a wrong verdict came about.
  const launched: Instance[] = [];
  const launch = async (i: number) => {
    const instance = await start(i);
    launched.push(instance);
    return instance;
  };
  try {
    for (let i = 0; i < o.instances; i++) instances.push(await launch(i));
    const chunk = Math.ceil(messages.length / (o.faults + 1));
    let sent = 0;
    for (let f = 0; f < o.faults; f++) {
      const before = await outputCount(t.outputTopic);
      await produce(t.inputTopic, messages.slice(sent, sent + chunk));
      sent += chunk;
      // Under load: part of this chunk is processed, the rest still waits.
      await waitUntil(
        async () => (await outputCount(t.outputTopic)) - before >= BigInt(Math.ceil(chunk / 4)),
        `progress before fault ${f + 1}`,
      );
      const victim = f % o.instances;
      await (kind === 'kill' ? instances[victim].kill() : instances[victim].stop());
      instances[victim] = await launch(victim);
    }
    await produce(t.inputTopic, messages.slice(sent));
    await waitForCatchUp(t, 300_000);
  } finally {
    for (const instance of instances) await instance.stop();
  }
  const lag = await groupLag(t.groupId, t.inputTopic);
  const received = await readTopic(t.outputTopic);
  const verdict = judge(await offlineReplay(model, events), received);
  const deadLetters = (await readTopic(t.deadLetterTopic)).length;
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  const distinct = verdict.received - verdict.divergent - verdict.repeated;
  let logs: string | undefined;
  if (verdict.missing > 0 || verdict.divergent > 0) {
    logs = join(tmpdir(), `cellstream-faults-${t.inputTopic}.log`);
    const text = launched.map((instance, i) => `== instance ${i}\n${instance.log?.() ?? '(in process)'}`);
    await writeFile(logs, text.join('\n'));
  }
  return {
    ...(logs === undefined ? {} : { logs }),
    ...verdict,
    events: o.events,
    faults: o.faults,
    deliveriesPerPrediction: distinct > 0 ? (verdict.received - verdict.divergent) / distinct : 0,
    deadLetters,
    lag,
    seconds: (performance.now() - started) / 1000,
  };
}

/** Instances in one group stopped gracefully and started again under load. */
export const stopStartScenario = (o: ScenarioOptions) =>
  runScenario(o.exactlyOnce ? 'stopstart-eos' : 'stopstart', o, 'stop');

/** `cellstream kafka` child processes SIGKILLed under load (mid-batch, mid-transaction) and restarted. */
export const killScenario = (o: ScenarioOptions) =>
  runScenario(o.exactlyOnce ? 'kill-eos' : 'kill', o, 'kill');

/**
 * One instance processes the first half of the events and stops; its LMDB directory is deleted; a
 * new instance on an empty directory restores from the changelog and processes the rest.
 */
export async function lostLocalStateScenario(
  o: Pick<ScenarioOptions, 'events' | 'keys' | 'partitions' | 'exactlyOnce'>,
) {
  const model = await loadTestModel();
  const t = await createInputTopic(o.exactlyOnce ? 'restore-eos' : 'restore', o.partitions);
  const events = makeEvents(o.events, o.keys, 23);
  const messages = eventMessages(events);
  const half = Math.floor(messages.length / 2);
  const dir = await mkdtemp(join(tmpdir(), 'cellstream-restore-'));
  const run = async (part: typeof messages) => {
    let restoreMs = 0;
    let restored = 0;
    const pipeline = await startKafkaPipeline({
      model,
      brokers,
      ...t,
      stateDir: dir,
      exactlyOnce: o.exactlyOnce,
      maxWaitTimeInMs: 100,
      ...SESSION,
      logLevel: 'nothing',
      client: kafkaClientUnderTest,
      onRestore: (reports, ms) => {
        restoreMs += ms;
        restored += reports.reduce((n, r) => n + r.records, 0);
      },
    });
    await produce(t.inputTopic, part);
    await waitForCatchUp(t, 300_000);
    await pipeline.stop();
    return { restoreMs, restored };
  };
  await run(messages.slice(0, half));
  await rm(dir, { recursive: true, force: true });
  const second = await run(messages.slice(half));
  await rm(dir, { recursive: true, force: true });
  const verdict = judge(await offlineReplay(model, events), await readTopic(t.outputTopic));
  const keysAfterHalf = new Set(events.slice(0, half).map((e) => e.key)).size;
  return { ...verdict, ...second, keysAfterHalf };
}
