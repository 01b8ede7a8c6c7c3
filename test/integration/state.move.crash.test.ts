import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cp, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/formats/load.js';
import { modelFingerprint } from '../../src/model/index.js';
import { stateSize } from '../../src/model/network.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import type { StateRecord } from '../../src/state/types.js';
import { ensureBuilt, ROOT } from '../helpers/build.js';
import { runBin } from '../helpers/cli.js';
import { tempDir } from '../helpers/fixtures.js';
import { lmdbRecords } from '../helpers/lmdbRecords.js';
import { prng, tinyLstm } from '../helpers/models.js';
import { modelFile } from '../helpers/serve.js';

beforeAll(() => ensureBuilt(), 300_000);

/** Keys of the store the kills cut into: large enough that the copy takes a good part of a run. */
const KEYS = 100_000;

function sameRecords(a: Map<string, Buffer>, b: Map<string, Buffer>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (!b.get(k)?.equals(v)) return false;
  return true;
}

/** Runs `state adopt` as a child process and kills it with SIGKILL after `ms` unless it ended first. */
async function adoptKilledAfter(
  args: string[],
  ms: number,
): Promise<{ killed: boolean; code: number | null }> {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'cellstream.js'), 'state', 'adopt', ...args], {
    cwd: ROOT,
    stdio: 'ignore',
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { killed: signal === 'SIGKILL', code };
}

describe('state adopt killed with SIGKILL', () => {
  it('leaves the namespace empty or whole; each next run goes on from there until one ends', async () => {
    const file = await modelFile(tinyLstm(7));
    const model = await loadModel(file);
    const fingerprint = modelFingerprint(model);
    const pristine = await tempDir('state-move-crash-src');
    const store = await LmdbStore.open({ path: pristine });
    const rnd = prng(3);
    const size = stateSize(model);
    for (let k = 0; k < KEYS; k += 20_000) {
      const batch: Array<[string, StateRecord]> = [];
      for (let i = k; i < k + 20_000; i++) {
        const state = Float32Array.from({ length: size }, () => rnd() * 2 - 1);
        batch.push([
          `key-${i}`,
          {
            seq: 1 + (i % 97),
            ts: 1_700_000_000_000 + i,
            state,
            fingerprint,
            lastApplied: { kind: 'line', file: 'h.ndjson', line: i + 1 },
            lastId: `id-${i}`,
          },
        ]);
      }
      await store.putMany(batch);
    }
    await store.close();
    const expected = lmdbRecords(pristine);
    expect(expected.size).toBe(KEYS);

    const args = (dir: string) => ['--model', file, '--state', dir, '--namespace', 'tiny@1'];
    // Kills at growing delays, each run going on from what the one before left, until a run ends
    // on its own: the kills cover a whole run however long the machine's load makes it (no time
    // is checked), and the later ones cut into runs that resume a copy already made.
    const dir = await tempDir('state-move-crash');
    await cp(pristine, dir, { recursive: true });
    const seen: string[] = [];
    let kills = 0;
    let ended = false;
    for (let delay = 300; !ended; delay = Math.round(delay * 1.3)) {
      expect(kills, 'runs that never end by themselves').toBeLessThan(30);
      const run = await adoptKilledAfter(args(dir), delay);
      if (run.killed) kills++;
      else {
        expect(run.code).toBe(0);
        ended = true;
      }
      const namespace = lmdbRecords(join(dir, 'models'), 'model:tiny@1');
      const source = lmdbRecords(dir);
      // All or nothing: the namespace holds no record or every one, byte for byte.
      expect([0, KEYS]).toContain(namespace.size);
      if (namespace.size > 0) expect(sameRecords(namespace, expected)).toBe(true);
      // The source is emptied only after the namespace is whole, and in one transaction too.
      if (namespace.size === 0) expect(sameRecords(source, expected)).toBe(true);
      else if (source.size > 0) expect(sameRecords(source, expected)).toBe(true);
      const modelsFile = await stat(join(dir, 'models', 'data.mdb')).catch(() => undefined);
      seen.push(
        `${delay} ms: ${run.killed ? 'killed' : 'ended'}, namespace ${namespace.size}, source ${source.size}, models/data.mdb ${modelsFile?.size ?? 0} bytes`,
      );
    }
    expect(lmdbRecords(dir).size).toBe(0);
    // Run again after the end: nothing left to move, nothing changed.
    const again = await runBin(['state', 'adopt', ...args(dir)]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/adopted already: .* holds nothing, .* holds the state of 100000 keys/);
    expect(sameRecords(lmdbRecords(join(dir, 'models'), 'model:tiny@1'), expected)).toBe(true);
    console.log(`state adopt of ${KEYS} keys killed after:\n${seen.join('\n')}`);
    expect(kills).toBeGreaterThan(0);
  }, 600_000);
});
