import { join } from 'node:path';
import { open } from 'lmdb';
import { afterEach, describe, expect, it } from 'vitest';
import { createState, modelFingerprint } from '../../src/model/index.js';
import type { RunningServer } from '../../src/server/serve.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { tempDir } from '../helpers/fixtures.js';
import { tinyLstm } from '../helpers/models.js';
import { connect, exchange, modelFile, nextMessages, startTestServer } from '../helpers/serve.js';

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** An LMDB state directory holding key 'foreign', written by another model. */
async function stateWithForeignKey(): Promise<string> {
  const path = join(await tempDir('serve-isolation'), 'state');
  const store = await LmdbStore.open({ path });
  await store.putMany([
    [
      'foreign',
      {
        seq: 3,
        ts: 0,
        state: createState(tinyLstm()),
        lastApplied: { kind: 'none' },
        fingerprint: modelFingerprint(tinyLstm(99)),
      },
    ],
  ]);
  await store.close();
  return path;
}

describe('serve: one client’s bad events do not touch another’s', () => {
  it('answers the bad events with their own codes and every event of the other client with its prediction', async () => {
    const statePath = await stateWithForeignKey();
    const s = await startTestServer({
      model: { path: await modelFile(tinyLstm()) },
      state: { store: 'lmdb', path: statePath },
      // A long wait so that both clients' events share micro-batches.
      engine: { maxBatch: 512, maxDelayMs: 50 },
    });
    server = s;
    const bad = await connect(s.ws('/ingest'));
    const good = await connect(s.ws('/ingest'));
    const now = Date.now();
    const feature = (i: number) => [i / 100, -0.5, 1];
    const badEvents = [
      // Past the engine's 512-byte limit but within what LMDB indexes: before, it reached putMany.
      { key: 'k'.repeat(600), ts: now, features: [1, 2, 3] },
      // Past LMDB's 1978-byte limit: before, it failed the whole batch at putMany.
      { key: 'x'.repeat(2500), ts: now, features: [1, 2, 3] },
      { key: 'foreign', ts: now, features: [1, 2, 3] },
      { key: 'poison', ts: 8.64e15, features: [1, 2, 3] },
      { key: 'poison', ts: now, features: [1, 2, 3] },
    ];
    const goodEvents = Array.from({ length: 200 }, (_, i) => ({
      key: `g-${i % 10}`,
      ts: now + i,
      features: feature(i),
    }));
    const badAnswers = nextMessages(bad, badEvents.length * 10);
    const goodAnswers = nextMessages(good, goodEvents.length);
    // Interleaved frames from both connections, sent without waiting for answers.
    for (let f = 0; f < 10; f++) {
      bad.send(JSON.stringify(badEvents));
      good.send(JSON.stringify(goodEvents.slice(f * 20, f * 20 + 20)));
    }
    const got = await goodAnswers;
    expect(got.filter((a) => a['error'] !== undefined)).toEqual([]);
    expect(got.map((a) => [a['key'], a['seq']])).toEqual(
      goodEvents.map((e, i) => [e.key, Math.floor(i / 10) + 1]),
    );
    const answers = await badAnswers;
    const codes = answers.map(
      (a) => (a['error'] as { code?: string } | undefined)?.code ?? `seq ${a['seq']}`,
    );
    for (let f = 0; f < 10; f++) {
      expect(codes.slice(f * 5, f * 5 + 5)).toEqual([
        'EVENT_KEY_TOO_LONG',
        'EVENT_KEY_TOO_LONG',
        'STATE_MODEL_MISMATCH',
        'EVENT_TS_IN_FUTURE',
        // The far-future event did not lock the key.
        `seq ${f + 1}`,
      ]);
    }
    const mismatch = answers[2]['error'] as { reason: string };
    expect(mismatch.reason).toMatch(/^state of key 'foreign' was written by model /);
    bad.close();
    good.close();
  });

  it('answers /v1/keys for a key whose stored record does not decode with STATE_CORRUPT, and serves the others', async () => {
    const statePath = await stateWithForeignKey();
    // A record that is not one: what a torn or foreign write leaves behind.
    const raw = open<Buffer, string>({ path: statePath, encoding: 'binary', noSubdir: false });
    await raw.put('bad', Buffer.from([1, 0, 0, 1]));
    await raw.close();
    const s = await startTestServer({
      model: { path: await modelFile(tinyLstm()) },
      state: { store: 'lmdb', path: statePath },
    });
    server = s;
    const bad = await fetch(`${s.url}/v1/keys/bad`);
    expect(bad.status).toBe(500);
    const body = (await bad.json()) as { error: { code: string; reason: string } };
    expect(body.error.code).toBe('STATE_CORRUPT');
    expect(body.error.reason).toContain("'bad'");
    // The process lives on and other keys are read as before.
    const foreign = await fetch(`${s.url}/v1/keys/foreign`);
    expect(foreign.status).toBe(200);
    expect(await foreign.json()).toMatchObject({ key: 'foreign', seq: 3 });
    const ws = await connect(s.ws('/ingest'));
    const answers = nextMessages(ws, 2);
    ws.send(
      JSON.stringify([
        { key: 'bad', ts: Date.now(), features: [1, 2, 3] },
        { key: 'fresh', ts: Date.now(), features: [1, 2, 3] },
      ]),
    );
    const [a, b] = await answers;
    expect((a!['error'] as { code: string }).code).toBe('STATE_CORRUPT');
    expect(b).toMatchObject({ key: 'fresh', seq: 1 });
    ws.close();
  });

  it('answers the events of new keys STATE_FULL once the memory store is full, and goes on with the keys it holds', async () => {
    const s = await startTestServer({
      model: { path: await modelFile(tinyLstm()) },
      state: { store: 'memory', maxKeys: 2 },
      // One batch for each frame below.
      engine: { maxBatch: 512, maxDelayMs: 50 },
    });
    server = s;
    const ws = await connect(s.ws('/ingest'));
    const now = Date.now();
    const event = (key: string, i: number) => ({ key, ts: now + i, features: [i / 10, -0.5, 1] });
    const first = await exchange(ws, [event('a', 0), event('b', 1)]);
    expect(first.map((a) => [a['key'], a['seq']])).toEqual([
      ['a', 1],
      ['b', 1],
    ]);
    const answers = await exchange(ws, [event('c', 2), event('a', 3), event('b', 4), event('c', 5)]);
    const codes = answers.map(
      (a) => (a['error'] as { code?: string } | undefined)?.code ?? `${a['key']} ${a['seq']}`,
    );
    expect(codes).toEqual(['STATE_FULL', 'a 2', 'b 2', 'STATE_FULL']);
    expect((answers[0]['error'] as { reason: string }).reason).toContain("'c'");
    ws.close();
  });
});
