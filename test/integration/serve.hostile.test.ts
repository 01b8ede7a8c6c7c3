import { once } from 'node:events';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import type { RunningServer } from '../../src/server/serve.js';
import { ensureBuilt } from '../helpers/build.js';
import { tempDir } from '../helpers/fixtures.js';
import { eventually, halfOpenExchange, httpGet, rawExchange, resetAfter } from '../helpers/hostile.js';
import {
  closed,
  connect,
  exchange,
  modelFile,
  nextMessages,
  serveBin,
  startTestServer,
  upgradeStatus,
} from '../helpers/serve.js';

beforeAll(ensureBuilt);

let server: RunningServer | undefined;
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await server?.close();
  server = undefined;
});

const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const upgradeHeaders = (port: number) =>
  `Host: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n`;

async function open(url: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  const ws = await connect(url, options);
  sockets.push(ws);
  return ws;
}

async function metric(s: RunningServer, name: string): Promise<string> {
  return s.metrics.registry.getSingleMetricAsString(name);
}

/** `cellstream serve` of the test model on a free port, with a state directory of its own. */
async function serveAlone(name: string) {
  return serveBin([
    '--model',
    await modelFile(),
    '--port',
    '0',
    '--state',
    join(await tempDir(name), 'state'),
  ]);
}

describe('serve: hostile input cannot end the process', () => {
  it('answers over-deep frames EVENT_TOO_DEEP with a bounded echo, survives a broken upgrade request, and serves on', async () => {
    const { child, url } = await serveAlone('serve-hostile');
    try {
      const port = Number(new URL(url).port);
      const ws = url.replace('http', 'ws');
      const bystander = await open(`${ws}/ingest`);
      const attacker = await open(`${ws}/ingest`);

      const deepField = `{"key":"a","ts":1,"features":[1,2,3],"x":${nested(5000)}}`;
      const answers = nextMessages(attacker, 3);
      attacker.send(nested(5000));
      attacker.send(deepField);
      attacker.send(JSON.stringify({ key: 'a', ts: 2, features: [1, 2, 3] }));
      const [deep, field, valid] = await answers;
      for (const a of [deep, field]) {
        expect(a['error']).toMatchObject({ code: 'EVENT_TOO_DEEP' });
        expect(JSON.stringify(a).length).toBeLessThan(1024);
      }
      expect(valid).toMatchObject({ key: 'a', seq: 1 });

      // An upgrade whose target no URL parser accepts, and a plain request alike: 400, not a crash.
      const upgrade = await rawExchange(port, `GET http://[ HTTP/1.1\r\n${upgradeHeaders(port)}\r\n`);
      expect(upgrade).toMatch(/^HTTP\/1\.1 400 /);
      const plain = await rawExchange(port, 'GET http://[ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      expect(plain).toMatch(/^HTTP\/1\.1 400 /);

      expect(child.exitCode).toBeNull();
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const [answer] = await exchange(bystander, [{ key: 'b', ts: 1, features: [0, 0, 1] }]);
      expect(answer).toMatchObject({ key: 'b', seq: 1 });
    } finally {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    }
    expect(child.exitCode).toBe(0);
  });

  it('survives clients that reset the connection of an upgrade it refuses, and serves on', async () => {
    const { child, url, stderr } = await serveAlone('serve-hostile-reset');
    try {
      const port = Number(new URL(url).port);
      const key = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
      // Refused before any WebSocket exists: an unknown path (404) and a foreign Host (403).
      const refused = [
        `GET /nowhere HTTP/1.1\r\n${upgradeHeaders(port)}${key}\r\n`,
        `GET /ingest HTTP/1.1\r\n${upgradeHeaders(port).replace('127.0.0.1', 'evil.example')}${key}\r\n`,
      ];
      const answers: string[] = [];
      for (const request of refused) {
        answers.push(await resetAfter(port, request, 'after-answer'));
        await resetAfter(port, request, 'at-once');
      }
      const health = await fetch(`${url}/healthz`).then(
        (r) => r.status,
        (err: unknown) => String(err),
      );
      expect(health, stderr()).toBe(200);
      expect(answers[0]).toMatch(/^HTTP\/1\.1 404 /);
      expect(answers[1]).toMatch(/^HTTP\/1\.1 403 /);
      const ingest = await open(`${url.replace('http', 'ws')}/ingest`);
      const [answer] = await exchange(ingest, [{ key: 'r', ts: 1, features: [0, 0, 1] }]);
      expect(answer).toMatchObject({ key: 'r', seq: 1 });
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    }
    expect(child.exitCode).toBe(0);
  });

  it('the depth limit is configurable and counts the whole frame, never brackets inside strings', async () => {
    const s = await startTestServer({
      model: { path: await modelFile() },
      sources: { websocket: { maxJsonDepth: 4 } },
    });
    server = s;
    const ws = await open(s.ws('/ingest'));
    const answers = nextMessages(ws, 3);
    ws.send('{"key":"[[[[[[[[","ts":1,"features":[1,2,3],"m":{"n":{"o":{}}}}');
    ws.send('{"key":"k","ts":1,"features":[1,2,3],"m":{"n":{"o":{"p":[1]}}}}');
    ws.send('[{"key":"k","ts":1,"features":[1,2,3],"m":{"n":{"o":{}}}}]');
    const [ok, deep, frame] = await answers;
    expect(ok).toMatchObject({ key: '[[[[[[[[', seq: 1 });
    expect(deep['error']).toMatchObject({
      code: 'EVENT_TOO_DEEP',
      reason: expect.stringMatching(/deeper than 4 levels/),
    });
    expect(frame['error']).toMatchObject({ code: 'EVENT_TOO_DEEP' });
    expect(await metric(s, 'cellstream_rejects_total')).toMatch(/code="EVENT_TOO_DEEP"} 2/);
  });

  it('echoes a large rejected event only in part, and bounds the reason', async () => {
    const s = await startTestServer({ model: { path: await modelFile() } });
    server = s;
    const ws = await open(s.ws('/ingest'));
    const big = { key: 'big', ts: 1, features: Array.from({ length: 6000 }, () => 'xyz') };
    const longKey = { key: 'k'.repeat(15_000), ts: 1, features: 'no' };
    const [answer, keyAnswer] = await exchange(ws, [big, longKey]);
    expect(answer['error']).toMatchObject({ code: 'EVENT_INVALID' });
    expect(answer['event']).toBeUndefined();
    expect(answer['raw']).toMatch(/^\{"key":"big","ts":1,"features":\["xyz".*…$/);
    expect(JSON.stringify(answer).length).toBeLessThan(1500);
    expect(JSON.stringify(keyAnswer).length).toBeLessThan(1500);
  });
});

describe('serve: connection limits', () => {
  it('refuses connections over the overall and per-endpoint caps with 503 before the handshake; freed slots are reused', async () => {
    const s = await startTestServer({
      model: { path: await modelFile() },
      server: { maxConnections: 5 },
      sources: { websocket: { maxConnections: 4 } },
      sinks: { websocket: { maxConnections: 4 } },
    });
    server = s;
    const ingest = [];
    for (let i = 0; i < 4; i++) ingest.push(await open(s.ws('/ingest')));
    expect(await upgradeStatus(s.ws('/ingest'))).toBe(503);
    await open(s.ws('/subscribe'));
    expect(await upgradeStatus(s.ws('/subscribe'))).toBe(503);
    const refused = await rawExchange(
      s.port,
      `GET /subscribe HTTP/1.1\r\n${upgradeHeaders(s.port)}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    expect(refused).toMatch(/^HTTP\/1\.1 503 /);
    expect(refused).toMatch(/Retry-After: \d+/);
    expect(refused).toMatch(/at most 5 WebSocket connections/);
    expect(await metric(s, 'cellstream_connections_rejected_total')).toMatch(/reason="capacity"} 3/);

    ingest[0].close();
    await closed(ingest[0]);
    expect(await eventually(async () => (await upgradeStatus(s.ws('/subscribe'))) === 101)).toBe(true);
  });

  it('refuses a token over its own cap with 429; other tokens are unaffected', async () => {
    const A = 'token-a-0123456789abcdef';
    const B = 'token-b-0123456789abcdef';
    const s = await startTestServer({
      model: { path: await modelFile() },
      auth: {
        maxConnectionsPerToken: 2,
        tokens: [
          { name: 'a', token: A, scopes: ['ingest', 'subscribe'] },
          { name: 'b', token: B, scopes: ['ingest'] },
        ],
      },
    });
    server = s;
    await open(s.ws('/ingest'), { headers: { Authorization: `Bearer ${A}` } });
    await open(s.ws(`/subscribe?access_token=${A}`));
    expect(await upgradeStatus(s.ws('/ingest'), { headers: { Authorization: `Bearer ${A}` } })).toBe(429);
    expect(await upgradeStatus(s.ws('/ingest'), { headers: { Authorization: `Bearer ${B}` } })).toBe(101);
    expect(await metric(s, 'cellstream_connections_rejected_total')).toMatch(/reason="token-limit"} 1/);
  });

  it('closes the connection of an upgrade it refuses, even when the client keeps its side open', async () => {
    const s = await startTestServer({ model: { path: await modelFile() } });
    server = s;
    const key = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
    const { answer, socket } = await halfOpenExchange(
      s.port,
      `GET /nowhere HTTP/1.1\r\n${upgradeHeaders(s.port)}${key}\r\n`,
    );
    try {
      expect(answer).toMatch(/^HTTP\/1\.1 404 /);
      // A refused socket left open would hold a descriptor for good, and the HTTP server's close,
      // which waits for every connection, would never end: neither would the shutdown.
      server = undefined;
      await s.close();
    } finally {
      socket.destroy();
    }
  });

  it('releases the slot of an upgrade whose handshake fails', async () => {
    const s = await startTestServer({ model: { path: await modelFile() }, server: { maxConnections: 1 } });
    server = s;
    for (let i = 0; i < 3; i++) {
      // No Sec-WebSocket-Key: the WebSocket library answers 400 itself.
      expect(await rawExchange(s.port, `GET /ingest HTTP/1.1\r\n${upgradeHeaders(s.port)}\r\n`)).toMatch(
        /^HTTP\/1\.1 400 /,
      );
    }
    expect(await eventually(async () => (await upgradeStatus(s.ws('/ingest'))) === 101)).toBe(true);
  });
});

describe('serve: a client that does not read its answers', () => {
  it('is not read either once its outbound buffer is full; memory stays bounded and every answer comes once it reads', async () => {
    const cap = 256 * 1024;
    const s = await startTestServer({
      model: { path: await modelFile() },
      sources: { websocket: { maxOutboundBytes: cap, eventsPerSecond: 1e9, burst: 10_000_000 } },
    });
    server = s;
    const ws = await open(s.ws('/ingest'));
    // The client stops reading its socket: answers pile up in the kernel, then in the server.
    ws.pause();
    const perFrame = 10_000;
    const frames = 20;
    const frame = `[${Array(perFrame).fill('1').join(',')}]`;
    for (let i = 0; i < frames; i++) ws.send(frame);

    // Its ~19 MB of answers are far more than the kernel's socket buffers hold: the server's own
    // buffer for this client grows to the cap and stops there.
    const buffered = async () =>
      Number(/ (\d+)$/m.exec(await metric(s, 'cellstream_ingest_buffered_bytes'))![1]);
    let last = -1;
    let steady = 0;
    expect(
      await eventually(async () => {
        const now = await buffered();
        steady = now === last && now > 0 ? steady + 1 : 0;
        last = now;
        return steady >= 25;
      }, 40_000),
    ).toBe(true);
    // One answer may go past the cap: the one that crossed it.
    expect(last).toBeLessThanOrEqual(cap + 1024);

    const total = perFrame * frames;
    const all = nextMessages(ws, total);
    ws.resume();
    const answers = await all;
    expect(answers).toHaveLength(total);
    for (const a of answers) expect(a['error']).toMatchObject({ code: 'EVENT_INVALID' });
  });
});

describe('serve: Host allowlist without tokens', () => {
  it('answers only loopback names at its port (and configured hosts); a foreign Host gets 403 whatever its Origin', async () => {
    const s = await startTestServer({
      model: { path: await modelFile() },
      server: { allowedHosts: ['cellstream.internal:8443'] },
    });
    server = s;
    const port = s.port;
    const evil = `evil.example:${port}`;
    // DNS rebinding: a page of evil.example whose name now points at 127.0.0.1.
    expect(await upgradeStatus(s.ws('/ingest'), { headers: { Host: evil }, origin: `http://${evil}` })).toBe(
      403,
    );
    expect(await upgradeStatus(s.ws('/subscribe'), { headers: { Host: evil } })).toBe(403);
    const keys = await httpGet(`${s.url}/v1/keys/k`, { Host: evil });
    expect(keys.status).toBe(403);
    expect(JSON.parse(keys.body).error).toMatchObject({
      code: 'HOST_NOT_ALLOWED',
      reason: expect.stringMatching(/server\.allowedHosts/),
    });
    expect((await httpGet(`${s.url}/metrics`, { Host: evil })).status).toBe(403);
    expect((await httpGet(`${s.url}/`, { Host: `localhost:${port + 1}` })).status).toBe(403);
    // Probes may name the machine any way: health and readiness say nothing about keys.
    expect((await httpGet(`${s.url}/healthz`, { Host: evil })).status).toBe(200);

    for (const host of [
      `localhost:${port}`,
      `127.0.0.1:${port}`,
      `[::1]:${port}`,
      'cellstream.internal:8443',
    ]) {
      expect(
        await upgradeStatus(s.ws('/subscribe'), { headers: { Host: host }, origin: `http://${host}` }),
      ).toBe(101);
      expect((await httpGet(`${s.url}/v1/keys/k`, { Host: host })).status).toBe(404);
    }
    expect(await metric(s, 'cellstream_connections_rejected_total')).toMatch(/reason="host"} 2/);
  });

  it('with tokens configured, the token decides and any Host is answered', async () => {
    const TOKEN = 'reader-token-0123456789';
    const s = await startTestServer({
      model: { path: await modelFile() },
      auth: { tokens: [{ name: 'r', token: TOKEN, scopes: ['read', 'subscribe'] }] },
    });
    server = s;
    const headers = { Host: 'cellstream.example.com', Authorization: `Bearer ${TOKEN}` };
    expect((await httpGet(`${s.url}/v1/keys/k`, headers)).status).toBe(404);
    expect(await upgradeStatus(s.ws('/subscribe'), { headers })).toBe(101);
  });
});
