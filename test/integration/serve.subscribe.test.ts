import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import type { RunningServer } from '../../src/server/serve.js';
import { tinyLstm } from '../helpers/models.js';
import { closed, connect, exchange, modelFile, nextMessages, startTestServer } from '../helpers/serve.js';

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const event = (key: string, ts: number) => ({ key, ts, features: [0.1, ts % 7, -0.2] });

/** Everything `ws` receives from now on. */
function record(ws: WebSocket): Array<Record<string, unknown>> {
  const got: Array<Record<string, unknown>> = [];
  ws.on('message', (data) => got.push(JSON.parse(data.toString())));
  return got;
}

/** Sends a marker event for `key` and waits until `ws` has it, so everything before it has arrived. */
async function settle(ingest: WebSocket, ws: WebSocket, key: string, ts: number): Promise<void> {
  const seen = new Promise<void>((resolve) => {
    const on = (data: WebSocket.RawData) => {
      const m = JSON.parse(data.toString());
      if (m.key === key && m.ts === ts) {
        ws.off('message', on);
        resolve();
      }
    };
    ws.on('message', on);
  });
  await exchange(ingest, [event(key, ts)]);
  await seen;
}

const TOKENS = [
  { name: 'writer', token: 'writer-token-0123456789', scopes: ['ingest'] },
  { name: 'writer-a', token: 'writer-a-token-0123456789', scopes: ['ingest'], keyPrefix: 'a-' },
  { name: 'reader', token: 'reader-token-0123456789', scopes: ['subscribe'] },
  { name: 'reader-a', token: 'reader-a-token-0123456789', scopes: ['subscribe'], keyPrefix: 'a-' },
];
const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });

describe('serve: subscriptions', () => {
  it('delivers exactly the keys, prefix or all keys each subscriber asked for', async () => {
    const s = await startTestServer({ model: { path: await modelFile() } });
    server = s;
    const all = await connect(s.ws('/subscribe'));
    const some = await connect(s.ws('/subscribe?key=a-1&key=b-2'));
    const prefixed = await connect(s.ws('/subscribe?prefix=b-'));
    const [allGot, someGot, prefixGot] = [record(all), record(some), record(prefixed)];
    const ingest = await connect(s.ws('/ingest'));
    const keys = ['a-1', 'a-2', 'b-1', 'b-2', 'c-1'];
    await exchange(
      ingest,
      keys.flatMap((k, i) => [event(k, i), event(k, i + 10)]),
    );
    await settle(ingest, some, 'b-2', 99);
    await settle(ingest, prefixed, 'b-2', 100);
    await settle(ingest, all, 'b-2', 101);

    const keysOf = (got: Array<Record<string, unknown>>) => got.map((m) => m['key']);
    expect(new Set(keysOf(allGot))).toEqual(new Set(keys));
    expect(allGot).toHaveLength(13);
    expect(keysOf(someGot).every((k) => k === 'a-1' || k === 'b-2')).toBe(true);
    expect(someGot.filter((m) => m['key'] === 'a-1')).toHaveLength(2);
    expect(keysOf(prefixGot).every((k) => (k as string).startsWith('b-'))).toBe(true);
    expect(prefixGot.filter((m) => m['key'] === 'b-1')).toHaveLength(2);
    // A subscriber sees the same prediction the ingester was answered with.
    expect(allGot[0]).toMatchObject({ key: 'a-1', seq: 1, model: 'tiny@1' });
    for (const ws of [all, some, prefixed, ingest]) ws.close();
  });

  it('never shows a subscriber scoped to a key prefix any other key (0 leaks)', async () => {
    const s = await startTestServer({ model: { path: await modelFile() }, auth: { tokens: TOKENS } });
    server = s;
    const scoped = await connect(s.ws('/subscribe'), bearer('reader-a-token-0123456789'));
    const scopedAskingB = await connect(s.ws('/subscribe?prefix=b-'), bearer('reader-a-token-0123456789'));
    const full = await connect(s.ws('/subscribe'), bearer('reader-token-0123456789'));
    const [scopedGot, askingBGot, fullGot] = [record(scoped), record(scopedAskingB), record(full)];
    const ingest = await connect(s.ws('/ingest'), bearer('writer-token-0123456789'));
    const events = Array.from({ length: 200 }, (_, i) => event(`${'abc'[i % 3]}-${i % 11}`, i));
    await exchange(ingest, events);
    await settle(ingest, scoped, 'a-end', 1000);
    await settle(ingest, full, 'a-end', 1001);

    expect(fullGot.filter((m) => m['key'] !== 'a-end')).toHaveLength(200);
    const leaks = scopedGot.filter((m) => !(m['key'] as string).startsWith('a-'));
    expect(leaks).toHaveLength(0);
    expect(scopedGot.filter((m) => m['key'] !== 'a-end')).toHaveLength(
      events.filter((e) => e.key.startsWith('a-')).length,
    );
    expect(askingBGot).toHaveLength(0);
    for (const ws of [scoped, scopedAskingB, full, ingest]) ws.close();
  });

  it("answers an ingester's events outside its key prefix with AUTH_KEY_FORBIDDEN and applies none of them", async () => {
    const s = await startTestServer({ model: { path: await modelFile() }, auth: { tokens: TOKENS } });
    server = s;
    const ingest = await connect(s.ws('/ingest'), bearer('writer-a-token-0123456789'));
    const answers = await exchange(ingest, [event('a-1', 1), event('b-1', 2), event('a-1', 3)]);
    expect(answers[0]['seq']).toBe(1);
    expect(answers[1]['error']).toMatchObject({ code: 'AUTH_KEY_FORBIDDEN' });
    expect((answers[1]['error'] as { reason: string }).reason).toMatch(
      /outside this token's key prefix 'a-'/,
    );
    expect(answers[2]['seq']).toBe(2);
    expect(await s.store.getMany(['b-1'])).toEqual([undefined]);
    ingest.close();
  });

  it('bounds a slow subscriber’s buffer, drops with a counted notice, and keeps the others whole', async () => {
    // Room for the fast subscriber to fall behind for a moment; the paused one overflows it many
    // times over. On a loaded machine the fast one (read in this process, beside the server) can
    // still fall behind by more and drop some of its own: each subscriber's own count is checked.
    const cap = 1024 * 1024;
    // A wide head makes each prediction about 1.2 KB, so 12,000 are ~14 MB: far past any socket buffer.
    const wide = tinyLstm();
    const head = wide.head[0];
    const s = await startTestServer({
      model: {
        path: await modelFile({
          ...wide,
          head: [
            { ...head, outputSize: 64, W: new Float32Array(64 * 4).fill(0.01), b: new Float32Array(64) },
          ],
        }),
      },
      sinks: { websocket: { maxBufferedBytes: cap, onSlow: 'drop' } },
      sources: { websocket: { eventsPerSecond: 1e6, burst: 1e6 } },
    });
    server = s;
    const slow = await connect(s.ws('/subscribe'));
    slow.pause();
    const fast = await connect(s.ws('/subscribe'));
    let fastPredictions = 0;
    let fastNoticed = 0;
    fast.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (typeof m.dropped === 'number') fastNoticed += m.dropped;
      else fastPredictions++;
    });
    const ingest = await connect(s.ws('/ingest'));
    const total = 12_000;
    for (let sent = 0; sent < total; sent += 1000) {
      await exchange(
        ingest,
        Array.from({ length: 1000 }, (_, i) => event(`k${i % 50}`, sent + i)),
      );
    }
    expect(s.subscriptions.peakBufferedBytes()).toBeLessThanOrEqual(cap);
    const droppedTotal = async () =>
      Number(/cellstream_subscriber_dropped_total (\d+)/.exec(await s.metrics.registry.metrics())![1]);
    expect(await droppedTotal()).toBeGreaterThan(0);

    // The slow one catches up: it gets what was buffered, then the notice, and the counts add up.
    let predictions = 0;
    let noticed = 0;
    const caughtUp = new Promise<void>((resolve) => {
      slow.on('message', (data) => {
        const m = JSON.parse(data.toString());
        if (typeof m.dropped === 'number') noticed += m.dropped;
        else predictions++;
        if (predictions + noticed === total) resolve();
      });
    });
    slow.resume();
    await caughtUp;
    expect(noticed).toBeGreaterThan(0);
    await settle(ingest, fast, 'end', 1);
    // Every prediction reached the fast one or was counted in a notice to it (its own drops only).
    expect(fastPredictions + fastNoticed).toBe(total + 1);
    // The server-wide count is the two subscribers' notices: no drop went untold, none was told twice.
    expect(await droppedTotal()).toBe(noticed + fastNoticed);
    for (const ws of [slow, fast, ingest]) ws.close();
  });

  it('closes a slow subscriber with 1013 under the close policy', async () => {
    const s = await startTestServer({
      model: { path: await modelFile() },
      sinks: { websocket: { maxBufferedBytes: 1024, onSlow: 'close' } },
      sources: { websocket: { eventsPerSecond: 1e6, burst: 1e6 } },
    });
    server = s;
    const slow = await connect(s.ws('/subscribe'));
    slow.pause();
    const ingest = await connect(s.ws('/ingest'));
    const closing = new Promise<{ code: number }>((resolve) =>
      slow.once('close', (code) => resolve({ code })),
    );
    let sent = 0;
    while (s.subscriptions.size > 0) {
      await exchange(
        ingest,
        Array.from({ length: 1000 }, (_, i) => event(`k${i % 50}`, sent + i)),
      );
      sent += 1000;
    }
    slow.resume();
    expect((await closing).code).toBe(1013);
    ingest.close();
  });
});

describe('serve: subscription messages', () => {
  it('sends nothing but predictions to a subscriber that keeps up', async () => {
    const s = await startTestServer({ model: { path: await modelFile() } });
    server = s;
    const sub = await connect(s.ws('/subscribe?key=x'));
    const got = nextMessages(sub, 3);
    const ingest = await connect(s.ws('/ingest'));
    await exchange(ingest, [event('x', 1), event('y', 2), event('x', 3), event('x', 4)]);
    expect((await got).map((m) => m['seq'])).toEqual([1, 2, 3]);
    const closing = closed(sub);
    await s.close();
    server = undefined;
    expect((await closing).code).toBe(1001);
  });
});
