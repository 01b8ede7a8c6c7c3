import { once } from 'node:events';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { ensureBuilt } from '../helpers/build.js';
import { tempDir } from '../helpers/fixtures.js';
import { connect, modelFile, serveBin, upgradeStatus } from '../helpers/serve.js';

beforeAll(ensureBuilt);

describe('serve: graceful shutdown', () => {
  it('on SIGTERM answers every event already sent, flushes state to LMDB, closes and exits 0', async () => {
    const dir = await tempDir('serve-shutdown');
    const state = join(dir, 'state');
    const { child, url, logs } = await serveBin([
      '--model',
      await modelFile(),
      '--port',
      '0',
      '--state',
      state,
    ]);
    const ws = await connect(`${url.replace('http', 'ws')}/ingest`);
    const answers: Array<Record<string, unknown>> = [];
    ws.on('message', (data) => answers.push(JSON.parse(data.toString())));
    const closedWith = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));

    const sent = 2000;
    for (let i = 0; i < sent; i += 100) {
      ws.send(
        JSON.stringify(
          Array.from({ length: 100 }, (_, j) => ({ key: `k${(i + j) % 7}`, ts: i + j, features: [j, 1, 0] })),
        ),
      );
    }
    // Signal as soon as the first answers arrive, while most events are still in flight.
    await new Promise<void>((resolve) => {
      const check = () => (answers.length > 0 ? resolve() : setTimeout(check, 1));
      check();
    });
    child.kill('SIGTERM');
    const [exitCode] = await once(child, 'exit');
    expect(exitCode).toBe(0);
    expect(await closedWith).toBe(1001);

    // Every event sent was answered: applied, or refused as the server was going away.
    expect(answers).toHaveLength(sent);
    const applied = answers.filter((a) => typeof a['seq'] === 'number');
    const refused = answers.filter((a) => a['error'] !== undefined);
    expect(applied.length + refused.length).toBe(sent);
    for (const r of refused) expect(r['error']).toMatchObject({ code: 'SERVER_UNAVAILABLE' });
    expect(applied.length).toBeGreaterThan(0);

    // What was answered is exactly what the store holds: last seq per key.
    const lastSeq = new Map<string, number>();
    for (const p of applied) lastSeq.set(p['key'] as string, p['seq'] as number);
    const store = await LmdbStore.open({ path: state });
    const keys = [...lastSeq.keys()];
    const records = await store.getMany(keys);
    expect(records.map((r) => r?.seq)).toEqual(keys.map((k) => lastSeq.get(k)));
    await store.close();
    expect(logs.some((l) => l.includes('state flushed and store closed'))).toBe(true);
  });

  it('refuses new connections once shutdown has begun', async () => {
    const dir = await tempDir('serve-shutdown');
    const { child, url } = await serveBin([
      '--model',
      await modelFile(),
      '--port',
      '0',
      '--state',
      join(dir, 'state'),
    ]);
    const ws = await connect(`${url.replace('http', 'ws')}/subscribe`);
    const closedWith = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await closedWith).toBe(1001);
    await expect(upgradeStatus(`${url.replace('http', 'ws')}/subscribe`)).rejects.toThrow(/ECONNREFUSED/);
    const [exitCode] = await once(child, 'exit');
    expect(exitCode).toBe(0);
  });
});
