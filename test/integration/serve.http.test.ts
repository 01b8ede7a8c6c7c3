import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { warmKeys } from '../../src/rollout/warm.js';
import type { RunningServer } from '../../src/server/serve.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { tempDir } from '../helpers/fixtures.js';
import { tinyLstm } from '../helpers/models.js';
import { connect, exchange, modelFile, startTestServer } from '../helpers/serve.js';

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('serve: HTTP', () => {
  it('counts the keys held in memory by an LMDB store behind a bounded cache', async () => {
    const dir = await tempDir('serve-cache');
    const s = await startTestServer({
      model: { path: await modelFile() },
      state: { store: 'lmdb', path: join(dir, 'state'), maxKeysInMemory: 2 },
    });
    server = s;
    const ingest = await connect(s.ws('/ingest'));
    await exchange(
      ingest,
      ['a', 'b', 'c'].map((key, i) => ({ key, ts: i, features: [1, 0, 0] })),
    );
    ingest.close();
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toMatch(/cellstream_state_store_keys 3/);
    // The cache holds at most 2 of the 3 keys; the third is only in the LMDB file.
    expect(metrics).toMatch(/cellstream_state_keys_in_memory 2/);
  });

  it('shows how many events a warmed key was derived from, and keeps it as the key is served on', async () => {
    const dir = await tempDir('serve-warm');
    const path = join(dir, 'state');
    const store = await LmdbStore.open({ path });
    const history = [1, 2, 3, 4, 5].map((ts) => ({ key: 'w', ts, features: [ts / 5, 0, 1] }));
    await warmKeys({
      model: tinyLstm(),
      events: [...history, { key: 'v', ts: 9, features: [1, 1, 1] }],
      store,
    });
    await store.close();
    const s = await startTestServer({ model: { path: await modelFile() }, state: { store: 'lmdb', path } });
    server = s;
    expect(await (await fetch(`${s.url}/v1/keys/w`)).json()).toEqual({
      key: 'w',
      seq: 5,
      ts: 5,
      warmedFrom: 5,
    });
    const ingest = await connect(s.ws('/ingest'));
    const [answer] = await exchange(ingest, [{ key: 'w', ts: 6, features: [0, 0, 0] }]);
    ingest.close();
    expect(answer).toMatchObject({ key: 'w', seq: 6 });
    expect(await (await fetch(`${s.url}/v1/keys/w`)).json()).toEqual({
      key: 'w',
      seq: 6,
      ts: 6,
      warmedFrom: 5,
      prediction: answer,
    });
  });

  it('answers health, readiness, key look-ups, stats and Prometheus metrics', async () => {
    const s = await startTestServer({ model: { path: await modelFile() } });
    server = s;
    expect(await (await fetch(`${s.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${s.url}/readyz`);
    expect(ready.status).toBe(200);

    const ingest = await connect(s.ws('/ingest'));
    const answers = await exchange(ingest, [
      { key: 'cust-1', ts: 10, features: [1, 0, 0] },
      { key: 'cust-1', ts: 20, features: [0, 1, 0] },
      { key: 'cust-2', ts: 30, features: [0, 0, 1] },
      { key: 'cust-2', ts: 40, features: [1] },
    ]);
    ingest.close();

    const key = await (await fetch(`${s.url}/v1/keys/cust-1`)).json();
    expect(key).toEqual({ key: 'cust-1', seq: 2, ts: 20, prediction: answers[1] });
    const withState = (await (await fetch(`${s.url}/v1/keys/cust-1?state=1`)).json()) as { state: number[] };
    expect(withState.state).toHaveLength(8);
    expect((await fetch(`${s.url}/v1/keys/nobody`)).status).toBe(404);
    expect((await fetch(`${s.url}/v1/keys/cust-1`, { method: 'POST' })).status).toBe(405);

    const stats = await (await fetch(`${s.url}/v1/stats`)).json();
    expect(stats).toMatchObject({
      model: 'tiny@1',
      keys: 2,
      totals: { events: 4, predictions: 3, rejected: 1 },
    });

    const res = await fetch(`${s.url}/metrics`);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const metrics = await res.text();
    expect(metrics).toMatch(/cellstream_events_in_total{source="websocket"} 4/);
    expect(metrics).toMatch(/cellstream_predictions_out_total 3/);
    expect(metrics).toMatch(/cellstream_rejects_total{code="EVENT_WRONG_SIZE"} 1/);
    expect(metrics).toMatch(/cellstream_step_batch_seconds_count \d+/);
    expect(metrics).toMatch(/cellstream_batch_size_sum 4/);
    expect(metrics).toMatch(/cellstream_state_store_keys 2/);
    expect(metrics).toMatch(/cellstream_state_keys_in_memory 2/);
    expect(metrics).toMatch(/cellstream_subscribers 0/);
    expect(metrics).toMatch(/cellstream_subscriber_dropped_total 0/);
  });

  it('serves the dashboard and uPlot from the package, and nothing else', async () => {
    const s = await startTestServer({ model: { path: await modelFile() } });
    server = s;
    const page = await fetch(`${s.url}/`);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toMatch(/<script type="module" src="\/app.js">/);
    const app = await fetch(`${s.url}/app.js`);
    expect(await app.text()).toMatch(/from '\/vendor\/uPlot.esm.js'/);
    const uplot = await fetch(`${s.url}/vendor/uPlot.esm.js`);
    expect(uplot.status).toBe(200);
    expect(await uplot.text()).toMatch(/export \{ uPlot as default \}/);
    expect((await fetch(`${s.url}/vendor/uPlot.min.css`)).status).toBe(200);
    expect((await fetch(`${s.url}/../package.json`)).status).toBe(404);
    expect((await fetch(`${s.url}/vendor/../../package.json`)).status).toBe(404);
  });

  it('keeps state in LMDB behind a bounded cache and expires idle keys by their TTL', async () => {
    const dir = await tempDir('serve-lmdb');
    const s = await startTestServer({
      model: { path: await modelFile() },
      state: { store: 'lmdb', path: join(dir, 'state'), maxKeysInMemory: 2, ttl: '10s' },
    });
    server = s;
    const ingest = await connect(s.ws('/ingest'));
    const keys = ['k1', 'k2', 'k3', 'k4'];
    await exchange(
      ingest,
      keys.map((key, i) => ({ key, ts: 1000 + i, features: [i, 0, 1] })),
    );
    // k1 is read back from LMDB although the cache holds only 2 keys.
    expect(await (await fetch(`${s.url}/v1/keys/k1`)).json()).toMatchObject({ key: 'k1', seq: 1, ts: 1000 });
    // Event time moves on: k1, idle for 11 s, has expired (seq starts over); k4, idle 3 s, has not.
    const answers = await exchange(ingest, [
      { key: 'k4', ts: 9000, features: [0, 0, 0] },
      { key: 'k1', ts: 12_000, features: [0, 0, 0] },
      { key: 'k4', ts: 12_001, features: [0, 0, 0] },
    ]);
    expect(answers.map((a) => a['seq'])).toEqual([2, 1, 3]);
    ingest.close();
  });

  it('stops listening once closed', async () => {
    const s = await startTestServer({ model: { path: await modelFile() } });
    const closing = s.close();
    await closing;
    await expect(fetch(`${s.url}/readyz`)).rejects.toThrow();
  });
});
