import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import { perEvent } from '../../src/engine/rollout.js';
import type { Model } from '../../src/model/types.js';
import type { RunningServer } from '../../src/server/serve.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import { runMain } from '../helpers/cli.js';
import { tempDir } from '../helpers/fixtures.js';
import { prng, tinyLstm } from '../helpers/models.js';
import { connect, modelFile, nextMessages, startTestServer } from '../helpers/serve.js';

const A = tinyLstm(7);
const B: Model = { ...tinyLstm(8), version: '2' };
const ADMIN = 'admin-token-0123456789';
const APP = 'app-token-0123456789abcdef';
const auth = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface Ev {
  key: string;
  ts: number;
  id: string;
  features: number[];
}

/** `n` events of connection `c`, over its own keys, so per-key order is its send order. */
function connectionEvents(c: number, n: number, keys: number): Ev[] {
  const rnd = prng(100 + c);
  return Array.from({ length: n }, (_, i) => ({
    key: `c${c}-k${Math.floor(rnd() * keys)}`,
    ts: 1_700_000_000_000 + i * 1000,
    id: `c${c}-e${i}`,
    features: [rnd() * 2 - 1, rnd() * 2 - 1, rnd() * 2 - 1],
  }));
}

/** Each event's output from `model` alone over the whole sequence (`id` → output). */
async function offline(model: Model, events: readonly Ev[]): Promise<Map<string, number[]>> {
  const stepper = new KeyedStepper({ model, store: new MemoryStateStore() });
  const out = new Map<string, number[]>();
  const outcomes = perEvent(
    await stepper.process(events.map((event) => ({ event, position: { kind: 'none' as const } }))),
  );
  outcomes.forEach((o, i) => {
    if (o.kind !== 'prediction') throw new Error(`offline ${o.kind}`);
    out.set(events[i].id, o.prediction.output);
  });
  return out;
}

async function startRollout(extra: Record<string, unknown> = {}) {
  const [a, b] = [await modelFile(A), await modelFile(B)];
  const s = await startTestServer({
    model: { path: a, shadow: b },
    state: { store: 'lmdb', path: await tempDir('serve-rollout') },
    auth: {
      tokens: [
        { name: 'ops', token: ADMIN, scopes: ['admin'] },
        { name: 'app', token: APP, scopes: ['ingest', 'subscribe', 'read'] },
      ],
    },
    ...extra,
  });
  server = s;
  return s;
}

function post(s: RunningServer, path: string, token?: string): Promise<Response> {
  return fetch(`${s.url}${path}`, { method: 'POST', ...(token ? auth(token) : {}) });
}

/** Collects every message `ws` receives until `stop` is called. */
function collect(ws: WebSocket): { all: Array<Record<string, unknown>> } {
  const got = { all: [] as Array<Record<string, unknown>> };
  ws.on('message', (d) => got.all.push(JSON.parse(d.toString())));
  return got;
}

describe('serve with a shadow model (LMDB, WebSocket)', () => {
  it("keeps the shadow's predictions off the answers and the primary subscription, and gives them to ?model=", async () => {
    const s = await startRollout();
    const primarySub = await connect(s.ws('/subscribe'), auth(APP));
    const shadowSub = await connect(s.ws('/subscribe?model=tiny@2'), auth(APP));
    const primarySeen = collect(primarySub);
    const shadowSeen = collect(shadowSub);
    const events = connectionEvents(0, 120, 6);
    const ws = await connect(s.ws('/ingest'), auth(APP));
    const answers = nextMessages(ws, events.length);
    for (let i = 0; i < events.length; i += 10) ws.send(JSON.stringify(events.slice(i, i + 10)));
    const got = await answers;
    const [outA, outB] = [await offline(A, events), await offline(B, events)];
    expect(got.map((p) => p['model'])).toEqual(events.map(() => 'tiny@1'));
    expect(got.map((p) => p['output'])).toEqual(events.map((e) => outA.get(e.id)));
    await waitFor(() => primarySeen.all.length >= 120 && shadowSeen.all.length >= 120);
    expect(primarySeen.all.map((p) => p['model'])).toEqual(events.map(() => 'tiny@1'));
    expect(shadowSeen.all.map((p) => p['model'])).toEqual(events.map(() => 'tiny@2'));
    expect(shadowSeen.all.map((p) => p['output'])).toEqual(events.map((e) => outB.get(e.id)));

    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toMatch(/cellstream_shadow_compared_events\{primary="tiny@1",shadow="tiny@2"\} 120/);
    expect(metrics).toMatch(
      /cellstream_shadow_divergence_max_abs\{primary="tiny@1",shadow="tiny@2"\} 0\.\d+/,
    );
    expect(metrics).toMatch(/cellstream_model_step_seconds_count\{model="tiny@2"\} \d+/);
    expect(metrics).toMatch(/cellstream_model_primary\{model="tiny@1"\} 1/);
    const stats = (await (await fetch(`${s.url}/v1/stats`)).json()) as {
      models: { roles: Array<{ label: string; role: string }>; divergence: Array<{ events: number }> };
    };
    expect(stats.models.roles.map((r) => [r.label, r.role])).toEqual([
      ['tiny@1', 'primary'],
      ['tiny@2', 'shadow'],
    ]);
    expect(stats.models.divergence[0].events).toBe(120);
    for (const w of [ws, primarySub, shadowSub]) w.close();
  });

  it('admin endpoints need a token with the admin scope, from no foreign origin', async () => {
    const s = await startRollout();
    expect((await post(s, '/admin/promote')).status).toBe(401);
    expect((await post(s, '/admin/promote', APP)).status).toBe(403);
    const foreign = await fetch(`${s.url}/admin/promote`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, origin: 'http://evil.example' },
    });
    expect(foreign.status).toBe(403);
    expect((await fetch(`${s.url}/admin/promote`, auth(ADMIN))).status).toBe(405);
    expect((await post(s, '/admin/promote?model=nope', ADMIN)).status).toBe(400);
    const ok = await post(s, '/admin/promote', ADMIN);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ primary: 'tiny@2', previous: 'tiny@1', at: 0, switched: true });
    const models = (await (await fetch(`${s.url}/admin/models`, auth(ADMIN))).json()) as { roles: unknown };
    expect(models.roles).toEqual([
      { name: 'tiny@2', label: 'tiny@2', role: 'primary' },
      { name: 'tiny@1', label: 'tiny@1', role: 'shadow' },
    ]);
  });

  it('cellstream promote and rollback switch a running server with a token from the environment', async () => {
    const s = await startRollout();
    const withoutToken = await runMain([
      'promote',
      '--url',
      s.url,
      '--token-env',
      'CELLSTREAM_TEST_NO_SUCH_VAR',
    ]);
    expect(withoutToken.code).toBe(1);
    expect(withoutToken.stderr).toMatch(/401/);
    expect(withoutToken.stderr).toMatch(
      /no token was sent: put a token with the admin scope in CELLSTREAM_TEST_NO_SUCH_VAR/,
    );
    // Nothing listening: the reason, not fetch's bare "fetch failed".
    const spare = createServer();
    await new Promise<void>((listening) => spare.listen(0, '127.0.0.1', listening));
    const port = (spare.address() as AddressInfo).port;
    await new Promise((closed) => spare.close(closed));
    const unreachable = await runMain(['rollback', '--url', `http://127.0.0.1:${port}`]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain(
      `cannot reach serve at http://127.0.0.1:${port} (ECONNREFUSED): is it running`,
    );
    process.env['CELLSTREAM_TEST_ADMIN_TOKEN'] = ADMIN;
    try {
      const promoted = await runMain([
        'promote',
        '--url',
        s.url,
        '--token-env',
        'CELLSTREAM_TEST_ADMIN_TOKEN',
      ]);
      expect(promoted.code).toBe(0);
      expect(JSON.parse(promoted.stdout)).toMatchObject({
        primary: 'tiny@2',
        previous: 'tiny@1',
        switched: true,
      });
      expect(s.rollout!.rollout.primary).toBe('tiny@2');
      const back = await runMain(['rollback', '--url', s.url, '--token-env', 'CELLSTREAM_TEST_ADMIN_TOKEN']);
      expect(back.code).toBe(0);
      expect(JSON.parse(back.stdout)).toMatchObject({ primary: 'tiny@1', previous: 'tiny@2' });
      const named = await runMain([
        'promote',
        '--url',
        s.url,
        '--token-env',
        'CELLSTREAM_TEST_ADMIN_TOKEN',
        '--model',
        'tiny@1',
      ]);
      expect(JSON.parse(named.stdout)).toMatchObject({ primary: 'tiny@1', switched: false });
    } finally {
      delete process.env['CELLSTREAM_TEST_ADMIN_TOKEN'];
    }
  });

  it('promote and rollback under load: each event answered once, by the model primary at its position, bit for bit', async () => {
    const s = await startRollout();
    const perConnection = 1500;
    const all = [0, 1, 2].map((c) => connectionEvents(c, perConnection, 40));
    const flat = all.flat();
    const [outA, outB] = [await offline(A, flat), await offline(B, flat)];
    const sockets = await Promise.all(all.map(() => connect(s.ws('/ingest'), auth(APP))));
    const sub = await connect(s.ws('/subscribe'), auth(APP));
    const subSeen = collect(sub);
    const answered = sockets.map((ws, c) => nextMessages(ws, all[c].length));
    const sending = sockets.map(async (ws, c) => {
      for (let i = 0; i < perConnection; i += 25) {
        ws.send(JSON.stringify(all[c].slice(i, i + 25)));
        await new Promise((r) => setTimeout(r, 1));
      }
    });
    // Switch while the three connections are sending: promote, then roll back.
    await waitFor(() => s.rollout!.rollout.record.events > 600);
    let t0 = performance.now();
    const promoted = (await (await post(s, '/admin/promote', ADMIN)).json()) as { at: number };
    const promoteMs = performance.now() - t0;
    await waitFor(() => s.rollout!.rollout.record.events > promoted.at + 900);
    t0 = performance.now();
    const rolledBack = (await (await post(s, '/admin/rollback', ADMIN)).json()) as {
      at: number;
      primary: string;
    };
    const rollbackMs = performance.now() - t0;
    expect(rolledBack.primary).toBe('tiny@1');
    await Promise.all(sending);
    const got = await Promise.all(answered);

    let byB = 0;
    got.forEach((answers, c) => {
      expect(answers).toHaveLength(perConnection);
      answers.forEach((p, i) => {
        const id = all[c][i].id;
        expect(p['key']).toBe(all[c][i].key);
        // Exactly the named model's output for this event over the whole sequence.
        expect(p['output']).toEqual((p['model'] === 'tiny@2' ? outB : outA).get(id));
        if (p['model'] === 'tiny@2') byB++;
      });
    });
    // The events answered by the promoted model are exactly those between the two switch positions.
    expect(promoted.at).toBeGreaterThan(0);
    expect(rolledBack.at).toBeGreaterThan(promoted.at);
    expect(byB).toBe(rolledBack.at - promoted.at);
    // The primary subscription saw each event once, from the model that answered it.
    await waitFor(() => subSeen.all.length >= flat.length);
    expect(subSeen.all).toHaveLength(flat.length);
    expect(subSeen.all.filter((p) => p['model'] === 'tiny@2')).toHaveLength(byB);
    const stats = (await (await fetch(`${s.url}/v1/stats`)).json()) as { models: unknown };
    // Figures for docs/rollout.md: the switch round trips under load, divergence and step times.
    console.log(JSON.stringify({ promoteMs, rollbackMs, promoted, rolledBack, models: stats.models }));
    for (const w of [...sockets, sub]) w.close();
  });

  it('refuses a state directory holding one model’s state, and kafka with several models', async () => {
    const dir = await tempDir('serve-rollout-legacy');
    const a = await modelFile(A);
    const single = await startTestServer({ model: { path: a }, state: { store: 'lmdb', path: dir } });
    const ws = await connect(single.ws('/ingest'));
    const answer = nextMessages(ws, 1);
    ws.send(JSON.stringify({ key: 'k', ts: 1, features: [0, 0, 0] }));
    await answer;
    ws.close();
    await single.close();
    await expect(
      startTestServer({
        model: { path: a, shadow: await modelFile(B) },
        state: { store: 'lmdb', path: dir },
      }),
    ).rejects.toThrow(/holds the state of 1 keys written by serve with one model/);
    await expect(
      startTestServer({
        model: { path: a, shadow: a },
        kafka: { brokers: 'localhost:9', inputTopic: 'in', outputTopic: 'out', groupId: 'g' },
      }),
    ).rejects.toThrow(/not supported with kafka yet/);
  });

  it('refuses one model on a state directory whose model namespaces hold keys', async () => {
    const dir = await tempDir('serve-rollout-back');
    const s = await startRollout({ state: { store: 'lmdb', path: dir } });
    const ws = await connect(s.ws('/ingest'), auth(APP));
    const answer = nextMessages(ws, 2);
    ws.send(JSON.stringify(connectionEvents(0, 2, 2)));
    await answer;
    ws.close();
    expect((await post(s, '/admin/promote', ADMIN)).status).toBe(200);
    await s.close();
    server = undefined;
    // Back to one model (the promoted one) on the same directory: its namespace would go unread.
    await expect(
      startTestServer({ model: { path: await modelFile(B) }, state: { store: 'lmdb', path: dir } }),
    ).rejects.toThrow(
      /holds the state of several models in .*models: tiny@1 \(2 keys\), tiny@2 \(2 keys, primary\); serve with one model reads state\.path itself/,
    );
  });
});

async function waitFor(done: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('warm start into the namespaces of serve with several models', () => {
  it('cellstream warm --namespace fills each model from an archive; serve then goes on as a whole-history replay', async () => {
    const events = connectionEvents(0, 200, 6);
    const [history, live] = [events.slice(0, 150), events.slice(150)];
    const dir = await tempDir('serve-rollout-warm');
    const archive = join(dir, 'archive.ndjson');
    await writeFile(archive, `${history.map((e) => JSON.stringify(e)).join('\n')}\n`);
    const state = join(dir, 'state');
    const [a, b] = [await modelFile(A), await modelFile(B)];
    for (const [file, name] of [
      [a, 'tiny@1'],
      [b, 'tiny@2'],
    ] as const) {
      const run = await runMain([
        'warm',
        '--model',
        file,
        '--input',
        archive,
        '--state',
        state,
        '--namespace',
        name,
      ]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toMatch(/warmed 6 keys from 150 events/);
    }

    const s = await startTestServer({ model: { path: a, shadow: b }, state: { store: 'lmdb', path: state } });
    server = s;
    const shadowSeen = collect(await connect(s.ws('/subscribe?model=tiny@2')));
    const ws = await connect(s.ws('/ingest'));
    const answers = nextMessages(ws, live.length);
    ws.send(JSON.stringify(live));
    const got = await answers;
    const [outA, outB] = [await offline(A, events), await offline(B, events)];
    // Both models continue each key's whole history: the primary answers, the shadow is published.
    expect(got.map((p) => p['output'])).toEqual(live.map((e) => outA.get(e.id)));
    await waitFor(() => shadowSeen.all.length >= live.length);
    expect(shadowSeen.all.map((p) => p['output'])).toEqual(live.map((e) => outB.get(e.id)));
    const key = live[0].key;
    const look = (await (await fetch(`${s.url}/v1/keys/${key}`)).json()) as { warmedFrom?: number };
    expect(look.warmedFrom).toBe(history.filter((e) => e.key === key).length);
    ws.close();
  }, 120_000);
});
