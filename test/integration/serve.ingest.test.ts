import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { runReplay } from '../../src/commands/replay.js';
import { loadModel } from '../../src/formats/load.js';
import type { RunningServer } from '../../src/server/serve.js';
import { closed, connect, exchange, modelFile, nextMessages, startTestServer } from '../helpers/serve.js';

const FIXTURE = fileURLToPath(new URL('../golden/fixtures/onnx-lstm-clip/', import.meta.url));

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('serve: WebSocket ingest', () => {
  it('answers each event with the prediction replay gives for the same events', async () => {
    const modelPath = join(FIXTURE, 'model.onnx');
    const input = join(FIXTURE, 'events.ndjson');
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    await runReplay({ model: await loadModel(modelPath), input, stdout: out, stderr: new PassThrough() });
    const expected = Buffer.concat(chunks)
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));

    const s = await startTestServer({ model: { path: modelPath } });
    server = s;
    const events = (await readFile(input, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const ws = await connect(s.ws('/ingest'));
    // Frames of uneven sizes, single events among them, sent without waiting for answers.
    const answers = nextMessages(ws, events.length);
    for (let i = 0; i < events.length; ) {
      const size = (i % 7) + 1;
      const frame = events.slice(i, i + size);
      ws.send(JSON.stringify(size === 1 ? frame[0] : frame));
      i += size;
    }
    const got = await answers;
    expect(got).toHaveLength(expected.length);
    got.forEach((p, i) => {
      expect({ key: p['key'], ts: p['ts'], seq: p['seq'], model: p['model'] }).toEqual({
        key: expected[i].key,
        ts: expected[i].ts,
        seq: expected[i].seq,
        model: expected[i].model,
      });
      (p['output'] as number[]).forEach((v, j) => {
        expect(v).toBeCloseTo(expected[i].output[j], 6);
      });
    });
    ws.close();
  });

  it('keeps one sequence per key across connections: seqs 1..n, none twice', async () => {
    const s = await startTestServer({ model: { path: await modelFile() } });
    server = s;
    const sockets = await Promise.all([0, 1, 2].map(() => connect(s.ws('/ingest'))));
    const perSocket = 60;
    const replies = await Promise.all(
      sockets.map((ws, c) =>
        exchange(
          ws,
          Array.from({ length: perSocket }, (_, i) => ({
            key: `k${i % 3}`,
            ts: 1000 + i,
            features: [c, i / perSocket, 0.5],
          })),
        ),
      ),
    );
    for (const k of ['k0', 'k1', 'k2']) {
      const seqs = replies
        .flat()
        .filter((p) => p['key'] === k)
        .map((p) => p['seq'] as number)
        .sort((a, b) => a - b);
      expect(seqs).toEqual(Array.from({ length: perSocket }, (_, i) => i + 1));
    }
    for (const ws of sockets) ws.close();
  });

  it('answers malformed events with reasons, in order, and leaves the key state unchanged', async () => {
    const s = await startTestServer({ model: { path: await modelFile() } });
    server = s;
    const ws = await connect(s.ws('/ingest'));
    const [first] = await exchange(ws, [{ key: 'a', ts: 1, features: [0.1, 0.2, 0.3] }]);
    expect(first['seq']).toBe(1);
    const [before] = await s.store.getMany(['a']);

    const answers = await exchange(ws, [
      { key: 'a', ts: 2 },
      { key: 'a', ts: 3, features: [1, 2] },
      { ts: 4, features: [1, 2, 3] },
      'not an event',
      { key: 'a', ts: 'yesterday', features: [1, 2, 3] },
    ]);
    expect(answers.map((a) => (a['error'] as { code: string }).code)).toEqual([
      'EVENT_INVALID',
      'EVENT_WRONG_SIZE',
      'EVENT_INVALID',
      'EVENT_INVALID',
      'EVENT_INVALID',
    ]);
    expect((answers[0]['error'] as { reason: string }).reason).toMatch(/features, values or inputs/);
    expect((answers[1]['error'] as { reason: string }).reason).toMatch(/2 values, the model takes 3/);
    expect((answers[2]['error'] as { reason: string }).reason).toMatch(/key is missing/);
    expect(answers[1]['event']).toEqual({ key: 'a', ts: 3, features: [1, 2] });

    const bad = nextMessages(ws, 1);
    ws.send('{"key": "a", "ts": ');
    const [malformed] = await bad;
    expect(malformed['error']).toMatchObject({ code: 'EVENT_MALFORMED_JSON' });
    expect(malformed['raw']).toBe('{"key": "a", "ts": ');

    const [after] = await s.store.getMany(['a']);
    expect(after!.seq).toBe(before!.seq);
    expect(Array.from(after!.state)).toEqual(Array.from(before!.state));

    // A good event after the bad ones continues the sequence where it was.
    const [next] = await exchange(ws, [{ key: 'a', ts: 5, features: [0, 0, 0] }]);
    expect(next['seq']).toBe(2);
    ws.close();
  });

  it('answers a redelivered event (same id) with its original prediction, without stepping or publishing it', async () => {
    const s = await startTestServer({ model: { path: await modelFile() } });
    server = s;
    const sub = await connect(s.ws('/subscribe?key=d'));
    const published = nextMessages(sub, 2);
    const ws = await connect(s.ws('/ingest'));
    const event = { key: 'd', ts: 1, id: 'e-1', features: [1, 1, 1] };
    const answers = await exchange(ws, [event, event, { ...event, id: 'e-2', ts: 2 }]);
    expect(answers[0]['seq']).toBe(1);
    expect(answers[1]).toEqual({ ...answers[0], redelivered: true });
    expect(answers[2]['seq']).toBe(2);
    expect((await published).map((p) => p['seq'])).toEqual([1, 2]);
    ws.close();
    sub.close();
  });

  it('closes with 1009 on a frame larger than maxPayload', async () => {
    const s = await startTestServer({
      model: { path: await modelFile() },
      sources: { websocket: { maxPayload: 1024 } },
    });
    server = s;
    const ws = await connect(s.ws('/ingest'));
    const events = Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, ts: i, features: [1, 2, 3] }));
    expect(JSON.stringify(events).length).toBeGreaterThan(1024);
    const closing = closed(ws);
    ws.send(JSON.stringify(events));
    expect((await closing).code).toBe(1009);
  });

  it('closes with 1008 and a reason when a connection exceeds its rate limit', async () => {
    const s = await startTestServer({
      model: { path: await modelFile() },
      sources: { websocket: { eventsPerSecond: 5, burst: 20 } },
    });
    server = s;
    const ws = await connect(s.ws('/ingest'));
    const closing = closed(ws);
    for (let i = 0; i < 30; i++) ws.send(JSON.stringify({ key: 'f', ts: i, features: [0, 0, 0] }));
    const { code, reason } = await closing;
    expect(code).toBe(1008);
    expect(reason).toMatch(/rate limit/);
    const metrics = await s.metrics.registry.getSingleMetricAsString('cellstream_ws_closed_by_server_total');
    expect(metrics).toMatch(/code="1008"} 1/);
  });

  it('answers every event of a frame far larger than the in-flight cap, in order', async () => {
    const s = await startTestServer({
      model: { path: await modelFile() },
      sources: { websocket: { maxInFlight: 4 } },
    });
    server = s;
    const ws = await connect(s.ws('/ingest'));
    const events = Array.from({ length: 300 }, (_, i) => ({ key: `k${i % 5}`, ts: i, features: [i, 0, 1] }));
    const answers = nextMessages(ws, 600);
    ws.send(JSON.stringify(events));
    ws.send(JSON.stringify(events.map((e) => ({ ...e, ts: e.ts + 1000 }))));
    const got = await answers;
    expect(got.map((p) => p['ts'])).toEqual([...events.map((e) => e.ts), ...events.map((e) => e.ts + 1000)]);
    expect(got.every((p) => typeof p['seq'] === 'number')).toBe(true);
    ws.close();
  });
});
