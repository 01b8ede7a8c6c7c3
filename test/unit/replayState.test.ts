import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type ReplayOptions, runReplay } from '../../src/commands/replay.js';
import type { StateError } from '../../src/errors.js';
import { modelFingerprint } from '../../src/model/index.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { readStoreMeta } from '../../src/state/storeMeta.js';
import { capture, readNdjson } from '../helpers/cli.js';
import { tempDir, writeLines } from '../helpers/fixtures.js';
import { tinyLstm } from '../helpers/models.js';

/** `n` events over `keys` keys, deterministic. */
function eventLines(n: number, keys: number): string[] {
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      key: `k${(i * 7) % keys}`,
      ts: 1000 + i,
      features: [Math.sin(i), Math.cos(i), (i % 5) / 5],
    }),
  );
}

async function replay(options: Partial<ReplayOptions> & { input: string }) {
  const stderr = capture();
  const summary = await runReplay({
    model: tinyLstm(),
    stdout: capture().stream,
    stderr: stderr.stream,
    ...options,
  });
  return { summary, stderr: stderr.text() };
}

const lines = (
  path: string,
): Promise<Array<{ key: string; seq: number; output: number[]; redelivered?: boolean }>> => readNdjson(path);

let dir: string;
let full: string;
let half: string;
let reference: Array<{ key: string; seq: number; output: number[] }>;
beforeAll(async () => {
  dir = await tempDir('replay-state');
  full = await writeLines(join(dir, 'full.ndjson'), eventLines(120, 9));
  half = join(dir, 'half.ndjson');
  await writeLines(half, eventLines(120, 9).slice(0, 70));
  const output = join(dir, 'reference.ndjson');
  await replay({ input: full, output });
  reference = await lines(output);
});

describe('replay --state', () => {
  it('applies nothing twice when run again, and continues a longer file where the last run stopped', async () => {
    const state = join(dir, 's1');
    const output = join(dir, 's1.ndjson');
    // Both files under one name, as a file that grew.
    const first = await replay({ input: half, output, state, sourceName: 'events' });
    expect(first.summary).toMatchObject({ events: 70, predictions: 70, duplicates: 0 });

    const again = await replay({ input: half, output, state, sourceName: 'events' });
    expect(again.summary).toMatchObject({ events: 70, predictions: 0, duplicates: 70, repeated: 9 });
    expect(again.stderr).toBe(
      'replayed 70 events: 0 predictions, 0 rejected, 70 already applied and skipped (9 of their predictions repeated)\n',
    );

    const longer = await replay({ input: full, output, state, sourceName: 'events' });
    expect(longer.summary).toMatchObject({ events: 120, predictions: 50, duplicates: 70 });

    // The appended output: every reference prediction, and repeats only of identical ones,
    // each repeat marked redelivered: the runs' repeats are marked, the 70 + 50 steps are not.
    const written = await lines(output);
    const repeats = again.summary.repeated + longer.summary.repeated;
    expect(repeats).toBeGreaterThan(0);
    expect(written.filter((p) => p.redelivered === true)).toHaveLength(repeats);
    expect(written).toHaveLength(70 + 50 + repeats);
    const got = written.map(({ redelivered: _, ...p }) => p);
    const bySeq = new Map(got.map((p) => [`${p.key}/${p.seq}`, p]));
    expect(bySeq.size).toBe(reference.length);
    for (const p of reference) expect(bySeq.get(`${p.key}/${p.seq}`)).toEqual(p);
    for (const p of got) expect(p).toEqual(bySeq.get(`${p.key}/${p.seq}`));

    const store = await LmdbStore.open({ path: state });
    expect(await store.size()).toBe(9);
    await store.close();
  });

  it('knows a file by its absolute path unless it is given a source name', async () => {
    const state = join(dir, 's2');
    const moved = join(dir, 'moved.ndjson');
    await copyFile(half, moved);
    await replay({ input: half, state, sourceName: 'named' });
    expect((await replay({ input: moved, state, sourceName: 'named' })).summary).toMatchObject({
      predictions: 0,
    });
    // Under its own path the copy is another source: its lines are new events to this state.
    expect((await replay({ input: moved, state })).summary).toMatchObject({ predictions: 70 });
  });

  it('gives the same predictions with a cap on keys in memory', async () => {
    const output = join(dir, 's3.ndjson');
    await replay({ input: full, output, state: join(dir, 's3'), maxKeysInMemory: 2, maxBatch: 7 });
    expect(await lines(output)).toEqual(reference);
    await expect(replay({ input: full, maxKeysInMemory: 2 })).rejects.toMatchObject({ code: 'USAGE' });
  });

  it('refuses state of another model at once, naming both fingerprints; --on-model-mismatch reset proceeds', async () => {
    const state = join(dir, 's4');
    await replay({ input: half, state });
    const other = tinyLstm(99);
    const output = join(dir, 's4.ndjson');
    await writeFile(output, '');
    let error: StateError | undefined;
    try {
      await replay({ input: full, state, output, model: other });
    } catch (err) {
      error = err as StateError;
    }
    expect(error?.code).toBe('STATE_MODEL_MISMATCH');
    expect(error?.message).toContain(`tiny@1 (${modelFingerprint(tinyLstm())})`);
    expect(error?.message).toContain(modelFingerprint(other));
    expect(await readFile(output, 'utf8')).toBe('');

    const reset = await replay({ input: full, state, output, model: other, onModelMismatch: 'reset' });
    expect(reset.summary).toMatchObject({ predictions: 120, stateResets: 9 });
    expect(reset.stderr).toMatch(/^key 'k0': state reset: state of key 'k0' was written by model /m);
    expect((await readStoreMeta(state))?.model.fingerprint).toBe(modelFingerprint(other));
  });

  it('expires idle keys by --ttl, reporting each', async () => {
    const input = await writeLines(join(dir, 'ttl.ndjson'), [
      JSON.stringify({ key: 'old', ts: 0, features: [1, 2, 3] }),
      JSON.stringify({ key: 'new', ts: 10_000, features: [1, 2, 3] }),
      JSON.stringify({ key: 'new', ts: 20_000, features: [1, 2, 3] }),
    ]);
    const run = await replay({
      input,
      state: join(dir, 's5'),
      maxBatch: 1,
      ttl: { ttlMs: 15_000, clock: 'event' },
    });
    expect(run.summary.expired).toBe(1);
    expect(run.stderr).toMatch(/^key 'old': state expired after seq 1: idle for 20s of event time/m);
  });
});
