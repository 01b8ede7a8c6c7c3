// What hostile or careless clients cost `cellstream serve` (the real bin, LMDB state) in memory:
//   1. RSS with 10,000 idle /ingest connections;
//   2. RSS while 4 clients send 100 MB in total of invalid ~60 KB events and never read answers;
//   3. RSS while 4 clients send ~1 KB invalid events (echoed back whole) and never read, so their
//      answers pile up to the outbound cap and the server stops reading them.
// Loopback only. Needs the built dist/ (npm run bench:hostile builds if needed) and an open-files
// limit above 2 × connections (ulimit -n). Prints one JSON line of figures.
//   node bench/hostile.mjs [--idle 10000] [--megabytes 100] [--clients 4]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    idle: { type: 'string', default: '10000' },
    megabytes: { type: 'string', default: '100' },
    clients: { type: 'string', default: '4' },
  },
});
const IDLE = Number(args.idle);
const TOTAL_BYTES = Number(args.megabytes) * 1024 * 1024;
const CLIENTS = Number(args.clients);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mb = (bytes) => Math.round((bytes / 1024 / 1024) * 10) / 10;

const dir = await mkdtemp(join(tmpdir(), 'cellstream-hostile-'));
const config = join(dir, 'cellstream.yaml');
// Caps raised so that 10,000 idle connections are let in; the rate limit raised so that it does
// not close the senders before their memory effect shows.
await writeFile(
  config,
  [
    'server:',
    '  port: 0',
    `  maxConnections: ${IDLE + 100}`,
    'sources:',
    '  websocket:',
    `    maxConnections: ${IDLE + 100}`,
    '    eventsPerSecond: 1000000',
    '    burst: 10000000',
    'log:',
    '  level: warn',
    '',
  ].join('\n'),
);
const child = spawn(
  process.execPath,
  [
    join(root, 'bin', 'cellstream.js'),
    'serve',
    '--config',
    config,
    '--state',
    join(dir, 'state'),
    '--log-level',
    'info',
  ],
  { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
);
const url = await new Promise((resolve, reject) => {
  let buffered = '';
  child.stdout.on('data', (c) => {
    buffered += c;
    for (const line of buffered.split('\n').slice(0, -1)) {
      const entry = JSON.parse(line);
      if (entry.url) resolve(entry.url);
    }
    buffered = buffered.slice(buffered.lastIndexOf('\n') + 1);
  });
  child.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
});
const wsUrl = `${url.replace('http', 'ws')}/ingest`;
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) * 1024;
let peak = 0;
const sampler = setInterval(() => {
  peak = Math.max(peak, rss());
}, 50);

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused: ${res.statusCode}`)));
  });
}

async function settle() {
  await sleep(1500);
  return rss();
}

const figures = { baselineMB: mb(await settle()) };

// 1. Idle connections.
const idle = [];
for (let i = 0; i < IDLE; i += 200) {
  idle.push(...(await Promise.all(Array.from({ length: Math.min(200, IDLE - i) }, open))));
}
figures.idleConnections = idle.length;
figures.idleMB = mb(await settle());
figures.idleKBPerConnection = Math.round((rss() - figures.baselineMB * 1024 * 1024) / 1024 / idle.length);
for (const ws of idle) ws.terminate();
figures.afterIdleClosedMB = mb(await settle());

/**
 * `CLIENTS` connections that never read, each sending `frame` until it has sent its share of
 * `TOTAL_BYTES` or the server stops reading it (its send buffer stops draining for 3 s).
 */
async function neverReading(frame) {
  peak = 0;
  const before = rss();
  const share = TOTAL_BYTES / CLIENTS;
  const sockets = await Promise.all(Array.from({ length: CLIENTS }, open));
  const sent = await Promise.all(
    sockets.map(async (ws) => {
      ws.pause();
      let bytes = 0;
      let stalledSince = 0;
      let lastBuffered = 0;
      while (bytes < share) {
        if (ws.bufferedAmount > 8 * 1024 * 1024) {
          // Stalled: the server has taken nothing off this socket for 3 s.
          if (ws.bufferedAmount < lastBuffered) stalledSince = 0;
          lastBuffered = ws.bufferedAmount;
          stalledSince ||= Date.now();
          if (Date.now() - stalledSince > 3000) break;
          await sleep(20);
          continue;
        }
        stalledSince = 0;
        ws.send(frame);
        bytes += frame.length;
        if (bytes % (frame.length * 16) === 0) await sleep(0);
      }
      // What the server takes off its socket: sent minus what still waits on the client side once
      // that stops draining.
      let last = ws.bufferedAmount;
      for (let still = 0; ws.bufferedAmount > 0 && still < 150; ) {
        await sleep(20);
        still = ws.bufferedAmount < last ? 0 : still + 1;
        last = ws.bufferedAmount;
      }
      return bytes - ws.bufferedAmount;
    }),
  );
  await sleep(2000);
  const result = {
    readByServerMB: mb(sent.reduce((a, b) => a + b, 0)),
    rssBeforeMB: mb(before),
    peakRssMB: mb(peak),
    growthMB: mb(peak - before),
  };
  for (const ws of sockets) ws.terminate();
  result.afterDisconnectMB = mb(await settle());
  return result;
}

// 2. The attack: invalid ~60 KB events (their echo used to be the whole event).
const bigInvalid = JSON.stringify({ key: 'big', ts: 1, features: 'x'.repeat(60 * 1024) });
figures.bigInvalidEvents = await neverReading(bigInvalid);
// 3. Small invalid events, echoed back whole: answers as large as the input, never read.
const smallInvalid = JSON.stringify(
  Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, ts: 1, features: 'y'.repeat(900) })),
);
figures.echoedEvents = await neverReading(smallInvalid);

clearInterval(sampler);
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
await rm(dir, { recursive: true, force: true });
process.stdout.write(`${JSON.stringify(figures)}\n`);
