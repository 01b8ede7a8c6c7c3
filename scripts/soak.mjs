// Soak test of `cellstream serve` (the real bin, LMDB state) under mixed traffic: valid ingesters
// with ids, hostile frames (deep nesting, garbage, binary, oversized), ingesters and subscribers
// that never read, connection churn, and kill -9 of the server with a restart on the same state.
// Needs the built dist/ (npm run build). As a script (npm run soak):
//   node scripts/soak.mjs [--minutes N | --seconds N] [--kills K] [--port P] [--keep]
// Prints one JSON line of figures; exits 1 when an answered event is lost from state, an event is
// stepped twice, or an event or hostile frame went unanswered.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'bin', 'cellstream.js');

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string' },
    seconds: { type: 'string' },
    kills: { type: 'string' },
    port: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const durationMs = args.seconds ? Number(args.seconds) * 1000 : Number(args.minutes ?? 3) * 60_000;
// One kill -9 per minute by default, at least one.
const kills = Number(args.kills ?? Math.max(1, Math.round(durationMs / 60_000)));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const BASE_TS = 1_732_700_000_000;

async function freePort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** The serve child process, restartable on the same state and port; samples its RSS. */
class Server {
  constructor(port, state) {
    this.port = port;
    this.state = state;
    this.url = `http://127.0.0.1:${port}`;
    this.peakRssBytes = 0;
    this.starts = 0;
  }

  async start() {
    this.child = spawn(process.execPath, [bin, 'serve', '--port', String(this.port), '--state', this.state], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CELLSTREAM_LOG_LEVEL: 'warn' },
    });
    this.stderr = '';
    this.child.stderr.on('data', (c) => {
      this.stderr += c;
    });
    this.child.stdout.resume();
    this.starts++;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`serve exited at start: ${this.stderr}`);
      try {
        if ((await fetch(`${this.url}/readyz`)).status === 200) break;
      } catch {}
      await sleep(50);
    }
    this.sampler = setInterval(() => this.sample(), 200);
  }

  sample() {
    try {
      const status = readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      this.peakRssBytes = Math.max(this.peakRssBytes, kb * 1024);
    } catch {}
  }

  async kill9() {
    clearInterval(this.sampler);
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }

  async stop() {
    clearInterval(this.sampler);
    const exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
    this.child.kill('SIGTERM');
    return exited;
  }
}

/** Opens a socket to `url`; resolves undefined when the server refuses or is down. */
function open(url, options = {}) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, options);
    ws.once('open', () => resolve(ws));
    ws.once('error', () => resolve(undefined));
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(undefined);
    });
  });
}

const counts = {
  eventsSent: 0,
  predictions: 0,
  duplicates: 0,
  resent: 0,
  unavailable: 0,
  unexpectedAnswers: 0,
  outOfOrder: 0,
  hostileFrames: 0,
  hostileAnswered: 0,
  hostileUnanswered: 0,
  refusedConnections: 0,
  churned: 0,
  subscriberPredictions: 0,
};

/**
 * A client sending valid events with ids over its own keys, at most one unanswered event per key
 * (so a resend after a crash is either the key's last applied event, a duplicate, or new). It
 * checks each prediction's seq: event n of a key must be its n-th step.
 */
class Ingester {
  constructor(id, keys, server) {
    this.keys = Array.from({ length: keys }, (_, i) => `soak-${id}-${i}`);
    this.server = server;
    /** Per key: events answered with a prediction or as a duplicate (the last one's number). */
    this.answered = new Map(this.keys.map((k) => [k, 0]));
    /** Per key: the event sent and not yet answered. */
    this.unanswered = new Map();
    this.running = true;
    this.draining = false;
  }

  event(key, n) {
    return {
      key,
      ts: BASE_TS + n * 60_000,
      values: { spend: (n % 97) + 0.5, channel: n % 3 === 0 ? 'web' : 'store' },
      id: `${key}#${n}`,
    };
  }

  async run() {
    while (this.running) {
      const ws = await open(`${this.server.url.replace('http', 'ws')}/ingest`);
      if (!ws) {
        await sleep(100);
        continue;
      }
      await this.serve(ws);
    }
  }

  serve(ws) {
    return new Promise((resolve) => {
      const inOrder = [];
      ws.on('message', (data) => {
        const answer = JSON.parse(data.toString());
        const sent = inOrder.shift();
        if (!sent) {
          counts.unexpectedAnswers++;
          return;
        }
        const n = Number(sent.id.split('#')[1]);
        if (typeof answer.seq === 'number' || answer.duplicate) {
          if (typeof answer.seq === 'number') {
            counts.predictions++;
            if (answer.key !== sent.key || (answer.seq !== n && !answer.redelivered)) counts.outOfOrder++;
          } else counts.duplicates++;
          this.answered.set(sent.key, n);
          this.unanswered.delete(sent.key);
        } else if (answer.error?.code === 'SERVER_UNAVAILABLE') {
          counts.unavailable++;
        } else {
          counts.unexpectedAnswers++;
          this.unanswered.delete(sent.key);
        }
      });
      const pump = async () => {
        while (this.running && ws.readyState === WebSocket.OPEN) {
          const frame = [];
          for (const key of this.keys) {
            if (frame.length >= 20) break;
            if (inOrder.some((e) => e.key === key)) continue;
            const resend = this.unanswered.get(key);
            // Draining: only what is still unanswered goes out again.
            if (!resend && this.draining) continue;
            if (resend) counts.resent++;
            const e = resend ?? this.event(key, this.answered.get(key) + 1);
            if (!resend) counts.eventsSent++;
            this.unanswered.set(key, e);
            frame.push(e);
          }
          if (frame.length > 0) {
            inOrder.push(...frame);
            ws.send(JSON.stringify(frame));
          }
          await sleep(frame.length > 0 ? 5 : 20);
        }
      };
      ws.once('close', () => resolve());
      pump();
      this.close = () => ws.close();
    });
  }

  /** Sends no new events and waits until every event sent has been answered (resending as needed). */
  async settle(timeoutMs) {
    this.draining = true;
    const deadline = Date.now() + timeoutMs;
    while (this.unanswered.size > 0 && Date.now() < deadline) await sleep(50);
  }
}

/** Sends hostile frames, one at a time, and counts their answers. */
async function hostile(server, stop) {
  const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
  const frames = [
    deep,
    `{"key":"h","ts":1,"values":{"spend":1,"channel":"store"},"x":${deep}}`,
    'not json at all',
    JSON.stringify({ key: 'h', ts: 1, features: Array.from({ length: 6000 }, () => 'xyz') }),
    JSON.stringify({ key: 'h\u{1F600}', ts: 'yesterday', values: {} }),
    Buffer.from([0, 1, 2, 255]),
  ];
  let i = 0;
  while (!stop()) {
    const ws = await open(`${server.url.replace('http', 'ws')}/ingest`);
    if (!ws) {
      await sleep(100);
      continue;
    }
    while (!stop() && ws.readyState === WebSocket.OPEN) {
      const frame = frames[i++ % frames.length];
      counts.hostileFrames++;
      const answered = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), 10_000);
        ws.once('message', () => {
          clearTimeout(timer);
          resolve(true);
        });
        ws.once('close', () => {
          clearTimeout(timer);
          resolve(undefined);
        });
        ws.send(frame, { binary: Buffer.isBuffer(frame) });
      });
      if (answered === true) counts.hostileAnswered++;
      else if (answered === false) counts.hostileUnanswered++;
      // undefined: the server went away (a kill); the frame is not counted against it.
      else counts.hostileFrames--;
      ws.removeAllListeners('message');
      ws.removeAllListeners('close');
      await sleep(20);
    }
    ws.terminate();
  }
}

/** Clients that never read: ingesters sending invalid events, and subscribers. */
async function neverReaders(server, stop) {
  const held = [];
  while (!stop()) {
    for (const ws of held.splice(0)) ws.terminate();
    for (let i = 0; i < 2; i++) {
      const ing = await open(`${server.url.replace('http', 'ws')}/ingest`);
      if (ing) {
        ing.pause();
        held.push(ing);
        // Invalid events of ~1 KB, each echoed back whole: ~1 KB of answer per event, within the
        // rate limit. It sends until its own socket stops draining (the server stopped reading it).
        const junk = JSON.stringify(
          Array.from({ length: 50 }, (_, j) => ({ key: `nr-${j}`, ts: 1, features: 'x'.repeat(900) })),
        );
        for (let n = 0; n < 300 && ing.readyState === WebSocket.OPEN && ing.bufferedAmount < 4_000_000; n++) {
          ing.send(junk);
          await sleep(15);
        }
      }
      const sub = await open(`${server.url.replace('http', 'ws')}/subscribe`);
      if (sub) {
        sub.pause();
        held.push(sub);
      }
    }
    await sleep(3000);
  }
  for (const ws of held) ws.terminate();
}

/** A subscriber that reads. */
async function subscriber(server, stop) {
  while (!stop()) {
    const ws = await open(`${server.url.replace('http', 'ws')}/subscribe?prefix=soak-`);
    if (!ws) {
      await sleep(100);
      continue;
    }
    ws.on('message', () => counts.subscriberPredictions++);
    await new Promise((r) => {
      ws.once('close', r);
      const check = setInterval(() => {
        if (stop()) {
          clearInterval(check);
          ws.close();
        }
      }, 100);
      ws.once('close', () => clearInterval(check));
    });
  }
}

/** Connections opened and dropped at once, some mid-handshake. */
async function churn(server, stop) {
  while (!stop()) {
    const path = Math.random() < 0.5 ? '/ingest' : '/subscribe';
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}${path}`);
    ws.on('error', () => {});
    ws.on('unexpected-response', (_req, res) => {
      counts.refusedConnections++;
      res.resume();
    });
    if (Math.random() < 0.3) ws.terminate();
    else ws.once('open', () => ws.close());
    counts.churned++;
    await sleep(10);
  }
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'cellstream-soak-'));
  const server = new Server(args.port ? Number(args.port) : await freePort(), join(dir, 'state'));
  await server.start();
  const started = Date.now();
  const loadEnds = started + durationMs;
  let stopLoad = false;
  const stop = () => stopLoad;

  const ingesters = Array.from({ length: 4 }, (_, i) => new Ingester(i, 100, server));
  const running = [
    ...ingesters.map((i) => i.run()),
    hostile(server, stop),
    neverReaders(server, stop),
    subscriber(server, stop),
    churn(server, stop),
  ];

  // Kills spread over the run, none in its last fifth (so the end state is checked after traffic).
  for (let k = 1; k <= kills; k++) {
    await sleep(Math.max(0, started + (durationMs * 0.8 * k) / (kills + 1) - Date.now()));
    await server.kill9();
    await server.start();
  }
  await sleep(Math.max(0, loadEnds - Date.now()));
  stopLoad = true;
  // Valid ingesters keep going until every event they sent is answered, then stop.
  await Promise.all(ingesters.map((i) => i.settle(60_000)));
  for (const i of ingesters) {
    i.running = false;
    i.close?.();
  }
  await Promise.all(running);

  // Every event answered must be in the state: the key's seq is its number of answered events.
  let lost = 0;
  let doubled = 0;
  let unanswered = 0;
  for (const ingester of ingesters) {
    unanswered += ingester.unanswered.size;
    for (const [key, n] of ingester.answered) {
      const res = await fetch(`${server.url}/v1/keys/${encodeURIComponent(key)}`);
      const seq = res.status === 404 ? 0 : (await res.json()).seq;
      if (seq < n) lost += n - seq;
      if (seq > n + (ingester.unanswered.has(key) ? 1 : 0)) doubled += seq - n;
    }
  }
  const exitCode = await server.stop();
  if (!args.keep) await rm(dir, { recursive: true, force: true });

  const answered = counts.predictions + counts.duplicates;
  const summary = {
    seconds: Math.round((Date.now() - started) / 1000),
    starts: server.starts,
    kills,
    peakRssMB: Math.round(server.peakRssBytes / 1024 / 1024),
    eventsSent: counts.eventsSent,
    answered,
    predictions: counts.predictions,
    duplicates: counts.duplicates,
    resent: counts.resent,
    unavailable: counts.unavailable,
    unanswered,
    lost,
    doubled,
    outOfOrder: counts.outOfOrder,
    unexpectedAnswers: counts.unexpectedAnswers,
    hostileFrames: counts.hostileFrames,
    hostileAnswered: counts.hostileAnswered,
    hostileUnanswered: counts.hostileUnanswered,
    churned: counts.churned,
    refusedConnections: counts.refusedConnections,
    subscriberPredictions: counts.subscriberPredictions,
    serveExit: exitCode,
    state: args.keep ? dir : undefined,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  const ok =
    lost === 0 &&
    doubled === 0 &&
    unanswered === 0 &&
    counts.outOfOrder === 0 &&
    counts.unexpectedAnswers === 0 &&
    counts.hostileUnanswered === 0 &&
    answered === counts.eventsSent &&
    exitCode === 0;
  process.exitCode = ok ? 0 : 1;
}

main().catch((err) => {
  process.stderr.write(`soak: ${err.stack ?? err}\n`);
  process.exitCode = 1;
});
