// Failover: how long a SIGKILLed instance's partitions go unanswered, with and without standby
// state (kafka.standbys), at a given number of keys.
//   npm run bench:failover -- [--keys 1000000] [--partitions 6] [--session-timeout 6000] [--standbys 0,1]
//
// The changelog is seeded once with one state record per key (as an instance that has seen each
// key once would have written it), then per variant: instance A starts and restores everything,
// instance B joins (the group splits the partitions; with --standbys 1 each also follows the
// other's partitions), probe events flow to every partition, A is SIGKILLed, and the clock runs
// until every partition A owned has a prediction from B again (the predictions' record
// timestamps, B's clock at sending). Figures: kill → rebalance (the session timeout, mostly;
// the rebalance taken as the start of B's takeover restore, from its `restored` line), rebalance
// → answering (the restore and the first batch: what standby state shortens), kill → answering,
// and B's takeover restore (records, ms).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Partitioners } from 'kafkajs';
import { loadModel } from '../dist/formats/load.js';
import { keyPartitioner } from '../dist/kafka/keyPartitioner.js';
import { modelFingerprint } from '../dist/model/fingerprint.js';
import { createState } from '../dist/model/network.js';
import { encodeStateRecord } from '../dist/state/recordCodec.js';
import { brokers, kafkaClient } from './kafkaE2e.mjs';

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string', default: '1000000' },
    partitions: { type: 'string', default: '6' },
    'session-timeout': { type: 'string', default: '6000' },
    standbys: { type: 'string', default: '0,1' },
    model: { type: 'string', default: 'demo/visits.cellstream.json' },
    client: { type: 'string', default: 'kafkajs' },
    // A changelog topic seeded by an earlier run, kept (seeding 1M keys takes a minute or more).
    changelog: { type: 'string' },
  },
});
const KEYS = Number(args.keys);
const P = Number(args.partitions);
const SESSION = Number(args['session-timeout']);
const modelPath = new URL(`../${args.model}`, import.meta.url).pathname;
const model = await loadModel(modelPath);
const withSpec = model.metadata?.features !== undefined;
const inputSize = model.inputs[0].size;
const kafka = kafkaClient();
const admin = kafka.admin();
await admin.connect();
const id = `failover-${randomUUID().slice(0, 8)}`;
const changelog = args.changelog ?? `${id}-changelog`;
const log = (what, detail = {}) =>
  console.error(JSON.stringify({ at: new Date().toISOString(), what, ...detail }));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(condition, what, limitMs = 900_000) {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(20);
  }
}

/** One state record per key, each in the partition of its key, as the pipeline places them. */
async function seed() {
  if ((await admin.listTopics()).includes(changelog)) {
    const records = (await admin.fetchTopicOffsets(changelog)).reduce((n, o) => n + Number(o.high), 0);
    if (records >= KEYS) return { records, reused: changelog };
    throw new Error(`${changelog} holds ${records} records, fewer than --keys ${KEYS}`);
  }
  await admin.createTopics({
    topics: [
      {
        topic: changelog,
        numPartitions: P,
        replicationFactor: 1,
        configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
      },
    ],
    waitForLeaders: true,
  });
  // Every key's record is the same bytes: a state after one step is as large as any other.
  const value = Buffer.from(
    encodeStateRecord({
      seq: 1,
      ts: 1_700_000_000_000,
      state: createState(model),
      lastApplied: { kind: 'none' },
      fingerprint: modelFingerprint(model),
    }),
  );
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const started = performance.now();
  // Kept under the broker's 1 MB per partition batch; a few sends in flight (the keys are distinct,
  // so their order does not matter).
  const chunk = 6000;
  const inFlight = new Set();
  for (let i = 0; i < KEYS; i += chunk) {
    const messages = [];
    for (let k = i; k < Math.min(KEYS, i + chunk); k++) messages.push({ key: `k${k}`, value });
    const sent = producer.send({ topic: changelog, acks: -1, messages });
    inFlight.add(sent);
    sent.finally(() => inFlight.delete(sent)).catch(() => {});
    if (inFlight.size >= 4) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  await producer.disconnect();
  return {
    records: KEYS,
    bytesPerRecord: value.length,
    seconds: +((performance.now() - started) / 1000).toFixed(1),
  };
}

/** A `cellstream kafka` process; resolves once it logged `started`. */
async function instance(t, stateDir, standbys) {
  const proc = spawn(
    process.execPath,
    [
      new URL('../bin/cellstream.js', import.meta.url).pathname,
      'kafka',
      '--model',
      modelPath,
      '--kafka-brokers',
      brokers.join(','),
      '--input-topic',
      t.input,
      '--output-topic',
      t.output,
      '--dead-letter-topic',
      t.dead,
      '--changelog-topic',
      changelog,
      '--group-id',
      t.group,
      '--state',
      stateDir,
      '--session-timeout',
      String(SESSION),
      '--heartbeat-interval',
      '500',
      '--http-port',
      '0',
      '--kafka-client',
      args.client,
      '--standbys',
      String(standbys),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1' } },
  );
  let text = '';
  let partial = '';
  // Each `restored` line with when it arrived: it is written as the restore ends, `ms` after it began.
  const restored = [];
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  proc.stderr.on('data', (c) => {
    const chunk = c.toString();
    text += chunk;
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    for (const line of lines) {
      if (line.includes('"event":"restored"')) restored.push({ at: Date.now(), ...JSON.parse(line) });
    }
  });
  await until(() => text.includes('"event":"started"') || proc.exitCode !== null, 'an instance to start');
  if (proc.exitCode !== null) throw new Error(`instance exited:\n${text}`);
  const http = /"event":"http","url":"([^"]+)"/.exec(text)[1];
  return {
    proc,
    log: () => text,
    restored,
    // A busy instance (restoring a million records) may drop a request: asked again by the poll.
    snapshot: async () => {
      if (proc.exitCode !== null)
        throw new Error(`instance exited with ${proc.exitCode}:\n${text.slice(-3000)}`);
      try {
        return await (await fetch(`${http}/v1/kafka`)).json();
      } catch {
        return {
          ready: false,
          partitions: [],
          standbyPartitions: [],
          standbyOffsets: {},
          restores: 0,
          totalLag: 0,
        };
      }
    },
    kill: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** Probe events, one per partition every 50 ms, to seeded keys of that partition. */
function probes(t) {
  const partitionOf = keyPartitioner(t.input, P);
  const keys = Array.from({ length: P }, () => []);
  for (let k = 0; keys.some((l) => l.length < 50) && k < KEYS; k++) {
    const p = partitionOf(`k${k}`);
    if (keys[p].length < 50) keys[p].push(`k${k}`);
  }
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  let tick = 0;
  let ts = Date.now();
  let timer;
  let sending = Promise.resolve();
  const keyOf = new Map(keys.flatMap((list, p) => list.map((k) => [k, p])));
  return {
    partitionOfKey: (k) => keyOf.get(k),
    async start() {
      await producer.connect();
      timer = setInterval(() => {
        const messages = keys.map((list) => {
          const key = list[tick % list.length];
          ts = Math.max(ts + 1, Date.now());
          const event = withSpec
            ? { key, ts, values: { spend: 50 + (tick % 40), channel: ['store', 'app', 'web'][tick % 3] } }
            : { key, ts, features: Array.from({ length: inputSize }, (_, i) => ((tick + i) % 10) / 10) };
          return { key, value: JSON.stringify(event) };
        });
        tick++;
        sending = sending.then(() => producer.send({ topic: t.input, acks: -1, messages })).catch(() => {});
      }, 50);
    },
    async stop() {
      clearInterval(timer);
      await sending;
      await producer.disconnect();
    },
  };
}

async function changelogEnds() {
  return new Map((await admin.fetchTopicOffsets(changelog)).map((o) => [o.partition, BigInt(o.high)]));
}

async function variant(standbys) {
  const t = {
    input: `${id}-s${standbys}-events`,
    output: `${id}-s${standbys}-predictions`,
    dead: `${id}-s${standbys}-dead`,
    group: `${id}-s${standbys}-group`,
  };
  await admin.createTopics({
    topics: [t.input, t.output, t.dead].map((topic) => ({ topic, numPartitions: P, replicationFactor: 1 })),
    waitForLeaders: true,
  });
  const dirs = [
    await mkdtemp(join(tmpdir(), 'cellstream-failover-')),
    await mkdtemp(join(tmpdir(), 'cellstream-failover-')),
  ];
  const probe = probes(t);
  await probe.start();
  const started = performance.now();
  const a = await instance(t, dirs[0], standbys);
  await until(async () => {
    const s = await a.snapshot();
    return s.ready && s.restores > 0 && s.partitions.length === P;
  }, 'A to restore everything');
  const aAlone = (performance.now() - started) / 1000;
  log('A restored', { standbys, seconds: +aAlone.toFixed(1) });
  const b = await instance(t, dirs[1], standbys);
  // Both in the group, each restored, every partition owned, probes answered; with standbys,
  // each following the other's partitions to the changelog's end.
  await until(async () => {
    const [sa, sb] = [await a.snapshot(), await b.snapshot()];
    const owned = new Set([...sa.partitions, ...sb.partitions]);
    if (!sa.ready || !sb.ready || sa.restores === 0 || sb.restores === 0) return false;
    if (owned.size !== P || sa.partitions.length === 0 || sb.partitions.length === 0) return false;
    if (sa.totalLag + sb.totalLag > 4 * P) return false;
    if (standbys === 0) return true;
    const ends = await changelogEnds();
    return [sa, sb].every(
      (s) =>
        s.standbyPartitions.length === P - s.partitions.length &&
        s.standbyPartitions.every(
          (p) => BigInt(s.standbyOffsets[String(p)] ?? -1) >= (ends.get(p) ?? 0n) - 1n,
        ),
    );
  }, 'both instances to settle');
  log('settled', { standbys, seconds: +((performance.now() - started) / 1000).toFixed(1) });
  const taken = (await a.snapshot()).partitions;

  // Predictions of the partitions A owns, as B sends them after the kill.
  const firstAnswer = new Map();
  const consumer = kafka.consumer({ groupId: `${id}-s${standbys}-watch`, maxWaitTimeInMs: 50 });
  await consumer.connect();
  await consumer.subscribe({ topic: t.output, fromBeginning: false });
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    joined = true;
  });
  let killedAt = Number.POSITIVE_INFINITY;
  await consumer.run({
    eachMessage: async ({ message }) => {
      const at = Number(message.timestamp);
      const p = probe.partitionOfKey(message.key?.toString() ?? '');
      if (p === undefined || !taken.includes(p) || at <= killedAt + 50) return;
      if (!firstAnswer.has(p)) firstAnswer.set(p, at);
    },
  });
  await until(() => joined, 'the output watcher to join');
  await sleep(1000);

  const restoresBefore = b.restored.length;
  killedAt = Date.now();
  await a.kill();
  await until(
    () => taken.every((p) => firstAnswer.has(p)),
    'B to answer for every partition A owned',
    900_000,
  );
  const answeredAt = Math.max(...taken.map((p) => firstAnswer.get(p)));
  // B restores A's partitions when it handles its first batch after the rebalance: the start of
  // that restore is the rebalance, as near as B can tell it (its /v1/kafka is too busy to ask
  // while it restores a million records).
  const restores = b.restored.slice(restoresBefore);
  const rebalancedAt = restores.length > 0 ? restores[0].at - restores[0].ms : Number.NaN;
  await consumer.disconnect();
  await probe.stop();
  await b.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  await admin.deleteTopics({ topics: [t.input, t.output, t.dead] }).catch(() => {});
  return {
    standbys,
    keys: KEYS,
    partitions: P,
    takenOver: taken.length,
    killToRebalanceMs: Math.round(rebalancedAt - killedAt),
    rebalanceToAnsweringMs: Math.round(answeredAt - rebalancedAt),
    killToAnsweringMs: answeredAt - killedAt,
    takeoverRestore: {
      records: restores.reduce((n, r) => n + r.records, 0),
      ms: restores.reduce((n, r) => n + r.ms, 0),
    },
  };
}

try {
  const seeded = await seed();
  console.log(JSON.stringify({ seeded }));
  for (const s of args.standbys.split(',').map(Number)) console.log(JSON.stringify(await variant(s)));
} finally {
  if (args.changelog === undefined) await admin.deleteTopics({ topics: [changelog] }).catch(() => {});
  await admin.disconnect();
}
