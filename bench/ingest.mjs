// Events per second through WebSocket /ingest on 1 connection and on 10, and the server memory a
// slow subscriber costs. Runs the built server (npm run bench:ingest builds it if needed) in this
// worker thread, with real ws clients over loopback in the main thread.
//   node bench/ingest.mjs [--model FILE] [--events N] [--store lmdb|memory]

import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import WebSocket from 'ws';
import { saveCellstreamModel } from '../dist/formats/cellstream/index.js';
import { describeModel } from '../dist/model/index.js';
import { benchModel, withHead } from './model.mjs';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    events: { type: 'string', default: '200000' },
    store: { type: 'string', default: 'lmdb' },
  },
});
const EVENTS = Number(args.events);
const FRAME = 100;
const WINDOW = 20; // frames in flight per connection
const tmp = mkdtempSync(join(tmpdir(), 'cellstream-bench-ingest-'));

/** LSTM 8 → 32 with a sigmoid head of 1: a small production-like churn model. */
async function churnModel() {
  const model = { ...withHead(benchModel(8, 32), 1), name: 'bench', version: '1' };
  const path = join(tmp, 'bench.cellstream.json');
  await saveCellstreamModel(model, path);
  return path;
}

/** Starts the server in a worker thread; resolves with its URL and a way to ask it things. */
async function start(modelPath, overrides = {}) {
  const worker = new Worker(new URL('./ingestServer.mjs', import.meta.url), {
    workerData: {
      model: { path: modelPath },
      state: { store: args.store, path: join(tmp, `state-${Math.random().toString(36).slice(2)}`) },
      server: { port: 0 },
      sources: { websocket: { eventsPerSecond: 1e9, burst: 1e7, maxPayload: 1 << 20, maxInFlight: 1 << 16 } },
      engine: { maxBatch: 1024, maxDelayMs: 2 },
      log: { level: 'silent' },
      ...overrides,
    },
  });
  const [{ url }] = await once(worker, 'message');
  const ask = async (msg) => {
    worker.postMessage(msg);
    const [reply] = await once(worker, 'message');
    return reply;
  };
  return { url, stats: () => ask('stats'), close: () => ask('close') };
}

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Sends `count` events over `ws` in frames of FRAME, WINDOW frames ahead; resolves when all are answered. */
function pump(ws, count, keyBase, features) {
  return new Promise((resolve) => {
    let sent = 0;
    let answered = 0;
    const sendFrame = () => {
      const n = Math.min(FRAME, count - sent);
      if (n <= 0) return;
      const frame = [];
      for (let i = 0; i < n; i++) {
        const e = sent + i;
        frame.push({ key: `${keyBase}${e % 1000}`, ts: e, features });
      }
      sent += n;
      ws.send(JSON.stringify(frame));
    };
    ws.on('message', () => {
      answered++;
      if (answered % FRAME === 0) sendFrame();
      if (answered === count) resolve();
    });
    for (let i = 0; i < WINDOW; i++) sendFrame();
  });
}

async function throughput(modelPath, connections, inputSize) {
  const server = await start(modelPath);
  const url = `${server.url.replace('http', 'ws')}/ingest`;
  const sockets = await Promise.all(Array.from({ length: connections }, () => open(url)));
  const features = Array.from({ length: inputSize }, (_, i) => (i % 3) - 1);
  // Warm-up, then the measured run on fresh keys.
  await Promise.all(sockets.map((ws, c) => pump(ws, 2000, `warm${c}-`, features)));
  for (const ws of sockets) ws.removeAllListeners('message');
  const per = Math.floor(EVENTS / connections);
  const t0 = performance.now();
  await Promise.all(sockets.map((ws, c) => pump(ws, per, `c${c}-`, features)));
  const seconds = (performance.now() - t0) / 1000;
  for (const ws of sockets) ws.close();
  await server.close();
  return (per * connections) / seconds;
}

async function slowSubscriber(modelPath, inputSize) {
  const cap = 1024 * 1024;
  const server = await start(modelPath, { sinks: { websocket: { maxBufferedBytes: cap, onSlow: 'drop' } } });
  const base = server.url.replace('http', 'ws');
  const slow = await open(`${base}/subscribe`);
  slow.pause();
  const fast = await open(`${base}/subscribe`);
  let fastCount = 0;
  let fastBytes = 0;
  fast.on('message', (d) => {
    fastCount++;
    fastBytes += d.length;
  });
  const ingest = await open(`${base}/ingest`);
  const before = await server.stats();
  const features = Array.from({ length: inputSize }, () => 0.5);
  await pump(ingest, EVENTS, 's-', features);
  const { peak, dropped, heapUsed } = await server.stats();
  slow.terminate();
  fast.close();
  ingest.close();
  await server.close();
  return {
    cap,
    peak,
    dropped,
    produced: fastCount,
    producedBytes: fastBytes,
    heapDelta: heapUsed - before.heapUsed,
  };
}

const modelPath = args.model ?? (await churnModel());
const { loadModel } = await import('../dist/formats/load.js');
const model = await loadModel(modelPath);
const inputSize = model.inputs[0].size;
console.log(`model: ${describeModel(model).split('\n')[0]}`);
console.log(
  `store: ${args.store}; ${EVENTS} events per run in frames of ${FRAME}, ${WINDOW} frames in flight per connection`,
);
const one = await throughput(modelPath, 1, inputSize);
console.log(`1 connection:   ${Math.round(one).toLocaleString('en')} events/s`);
const ten = await throughput(modelPath, 10, inputSize);
console.log(`10 connections: ${Math.round(ten).toLocaleString('en')} events/s`);
const s = await slowSubscriber(modelPath, inputSize);
const mb = (b) => `${(b / 1048576).toFixed(2)} MiB`;
console.log(
  `slow subscriber (paused, cap ${mb(s.cap)}, policy drop): peak server-side buffer ${mb(s.peak)}; ` +
    `${s.dropped.toLocaleString('en')} of ${s.produced.toLocaleString('en')} predictions dropped ` +
    `(${mb(s.producedBytes)} would otherwise have queued); server heap change over the run ${mb(s.heapDelta)}; ` +
    `the fast subscriber got all ${s.produced.toLocaleString('en')}`,
);
rmSync(tmp, { recursive: true, force: true });
