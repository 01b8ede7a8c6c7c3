// Events per second through WebSocket /ingest on 1 connection and on 10, with the CPU each event
// costs; a lone event's round trip (one client, one event at a time); and the server memory a
// slow subscriber costs. Runs the built server (npm run bench:ingest builds it if needed) in a
// worker thread, with real ws clients over loopback in the main thread.
//   node bench/ingest.mjs [--model FILE] [--events N] [--store lmdb|memory] [--lone N] [--no-slow]

import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
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
    lone: { type: 'string', default: '2000' },
    'no-slow': { type: 'boolean', default: false },
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
      // engine.maxDelayMs stays the server's default (2 ms before group commit, 0 since).
      engine: { maxBatch: 1024 },
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
  return { url, stats: () => ask('stats'), busy: () => ask('busy'), close: () => ask('close') };
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
  const n = per * connections;
  const busy0 = await server.busy();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(sockets.map((ws, c) => pump(ws, per, `c${c}-`, features)));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const busy = (await server.busy()) - busy0;
  for (const ws of sockets) ws.close();
  await server.close();
  return {
    eventsPerS: n / seconds,
    // Every thread of the process: the clients, the server's thread, lmdb's and V8's helpers.
    cpuUsPerEvent: (cpu.user + cpu.system) / n,
    // The server thread's event loop busy time (not idle, not waiting for I/O or fsync).
    serverBusyUsPerEvent: (busy * 1000) / n,
  };
}

/** One client, one event at a time: each sent when the previous one's answer arrived. Round trips in µs. */
async function loneRoundTrips(modelPath, count, inputSize) {
  const server = await start(modelPath);
  const ws = await open(`${server.url.replace('http', 'ws')}/ingest`);
  const features = Array.from({ length: inputSize }, (_, i) => (i % 3) - 1);
  const times = [];
  const one = (i) =>
    new Promise((resolve) => {
      const t = performance.now();
      ws.once('message', () => resolve(performance.now() - t));
      ws.send(JSON.stringify({ key: `lone-${i % 100}`, ts: i, features }));
    });
  for (let i = 0; i < 200; i++) await one(i);
  for (let i = 0; i < count; i++) times.push(await one(i));
  ws.close();
  await server.close();
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))] * 1000;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
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
console.log(
  `load average before: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
const rate = (r) =>
  `${Math.round(r.eventsPerS).toLocaleString('en')} events/s; CPU ${r.cpuUsPerEvent.toFixed(1)} µs/event ` +
  `(all threads), server loop busy ${r.serverBusyUsPerEvent.toFixed(1)} µs/event`;
const one = await throughput(modelPath, 1, inputSize);
console.log(`1 connection:   ${rate(one)}`);
const ten = await throughput(modelPath, 10, inputSize);
console.log(`10 connections: ${rate(ten)}`);
const LONE = Number(args.lone);
if (LONE > 0) {
  const rt = await loneRoundTrips(modelPath, LONE, inputSize);
  const ms = (us) => `${(us / 1000).toFixed(2)} ms`;
  console.log(
    `lone event round trip (${LONE} events, one at a time): p50 ${ms(rt.p50)}, p90 ${ms(rt.p90)}, ` +
      `p99 ${ms(rt.p99)}, max ${ms(rt.max)}`,
  );
}
console.log(
  `load average after: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
if (args['no-slow']) {
  rmSync(tmp, { recursive: true, force: true });
  process.exit(0);
}
const s = await slowSubscriber(modelPath, inputSize);
const mb = (b) => `${(b / 1048576).toFixed(2)} MiB`;
console.log(
  `slow subscriber (paused, cap ${mb(s.cap)}, policy drop): peak server-side buffer ${mb(s.peak)}; ` +
    `${s.dropped.toLocaleString('en')} of ${s.produced.toLocaleString('en')} predictions dropped ` +
    `(${mb(s.producedBytes)} would otherwise have queued); server heap change over the run ${mb(s.heapDelta)}; ` +
    `the fast subscriber got all ${s.produced.toLocaleString('en')}`,
);
rmSync(tmp, { recursive: true, force: true });
