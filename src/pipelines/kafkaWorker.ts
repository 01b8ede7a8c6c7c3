// One member of a Kafka instance's consumer group on a worker thread (`kafka.workers` above 1):
// a whole pipeline of its own, reporting to the main thread (kafkaWorkers.ts) by messages.
import { parentPort, workerData } from 'node:worker_threads';
import { CellstreamError } from '../errors.js';
import { type KafkaPipeline, startKafkaPipeline } from './kafkaPipeline.js';
import { type FromWorker, ownedRecords, type ToWorker, type WorkerData } from './kafkaWorkers.js';

/** How often the worker's health reaches the main thread, which answers `/readyz` and the gauges from it. */
const HEALTH_EVERY_MS = 200;

const port = parentPort;
if (!port) throw new Error('kafkaWorker.js runs as a worker thread of startKafkaInstance');
const data = workerData as WorkerData;
const send = (m: FromWorker) => port.postMessage(m);

/**
 * Fault injection for the tests only (docs/kafka.md, Workers): `CELLSTREAM_FAULT_WORKER_CRASH=<i>`
 * makes worker `i` throw an uncaught error once its first batch is durable;
 */
const crashes = process.env['CELLSTREAM_FAULT_WORKER_CRASH'] === String(data.index);
/** `CELLSTREAM_FAULT_WORKER_STUCK_STOP=<i>`: worker `i`'s stop never ends (nor its thread). */
const stuckStop = process.env['CELLSTREAM_FAULT_WORKER_STUCK_STOP'] === String(data.index);

let pipeline: KafkaPipeline | undefined;
let stopRequested = false;
let healthTimer: NodeJS.Timeout | undefined;

/** An error as it crosses to the main thread: its class's name, message and code. */
function described(err: unknown): { name: string; message: string; code?: string } {
  const e = err instanceof Error ? err : new Error(String(err));
  return { name: e.name, message: e.message, ...(e instanceof CellstreamError ? { code: e.code } : {}) };
}

const pushHealth = () => {
  if (!pipeline) return;
  send({ t: 'health', snapshot: pipeline.health.snapshot(data.options.groupId), joined: pipeline.joined() });
};

const stop = async () => {
  stopRequested = true;
  if (stuckStop) {
    setInterval(() => {}, 60_000);
    return;
  }
  if (!pipeline) return;
  let error: string | undefined;
  try {
    await pipeline.stop();
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  }
  if (healthTimer) clearInterval(healthTimer);
  pushHealth();
  send({ t: 'stopped', ...(error === undefined ? {} : { error }) });
  port.close();
};

port.on('message', (m: ToWorker) => {
  if (m.t === 'stop') {
    void stop();
    return;
  }
  if (m.t === 'drain') {
    // A failure is the stop's to report (it drains again, and fails the same way).
    const drained = pipeline ? pipeline.drain().catch(() => {}) : Promise.resolve();
    void drained.then(() => send({ t: 'drained' }));
    return;
  }
  const running = pipeline;
  if (!running) {
    send({ t: 'reply', id: m.id, error: described(new Error('the Kafka worker is starting')) });
    return;
  }
  const answer: Promise<unknown> = m.t === 'getMany' ? ownedRecords(running, m.keys) : running.store.size();
  answer.then(
    (value) => send({ t: 'reply', id: m.id, value }),
    (err: unknown) => send({ t: 'reply', id: m.id, error: described(err) }),
  );
});

try {
  pipeline = await startKafkaPipeline({
    ...data.options,
    healthObserver: {
      rebalance: () => send({ t: 'observe', kind: 'rebalance' }),
      crash: (restart) => send({ t: 'observe', kind: 'crash', restart }),
      rejoin: () => send({ t: 'observe', kind: 'rejoin' }),
      resync: () => send({ t: 'observe', kind: 'resync' }),
      restore: (seconds, records, unreadable) =>
        send({ t: 'observe', kind: 'restore', seconds, records, unreadable }),
    },
    onBatch: (report) => {
      // Predictions cross threads only when someone (serve's subscribers, the dashboard) reads them.
      send({ t: 'batch', report: data.predictions ? report : { ...report, fresh: [] } });
      if (crashes) {
        setImmediate(() => {
          throw new Error(`injected crash of worker ${data.index} (CELLSTREAM_FAULT_WORKER_CRASH)`);
        });
      }
    },
    onRestore: (reports, ms) => send({ t: 'restore', reports, ms }),
    onStall: (message) => send({ t: 'stall', message }),
    onStallEnd: () => send({ t: 'stall' }),
    onRejoin: (attempt, error) => send({ t: 'rejoin', attempt, message: error.message }),
    onConsumerRetry: (error, repeats) => send({ t: 'retry', repeats, message: error.message }),
    onStandbyError: (partition, error) => send({ t: 'standby-error', partition, message: error.message }),
    onStandbyUnreadable: (records) => send({ t: 'standby-unreadable', records }),
    onLost: (error) => send({ t: 'lost', message: error.message }),
  });
} catch (err) {
  send({ t: 'failed', ...described(err) });
  port.close();
}

if (pipeline) {
  pushHealth();
  healthTimer = setInterval(pushHealth, HEALTH_EVERY_MS);
  send({ t: 'started', modelLabel: pipeline.modelLabel });
  // A stop asked for while joining: now that there is a pipeline, stop it.
  if (stopRequested) await stop();
}
