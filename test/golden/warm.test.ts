import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import { loadSidecarSpec } from '../../src/features/loadSpec.js';
import { modelFeatures } from '../../src/features/modelFeatures.js';
import { loadModel } from '../../src/formats/load.js';
import { modelFingerprint } from '../../src/model/index.js';
import { warmKeys } from '../../src/rollout/warm.js';
import { ndjsonLines } from '../../src/sources/ndjsonFile.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { tempDir } from '../helpers/fixtures.js';
import { maxAbsError } from './harness.js';

/**
 * Warm start against the framework (test/golden/warm/make_fixtures.py): a key warmed from its
 * history holds the state Keras reaches running the model over that whole history at once, and
 * its next event, served from the warmed state, gets the prediction Keras gives for the history
 * followed by that event.
 */
const FIXTURES = fileURLToPath(new URL('./warm/fixtures/', import.meta.url));

interface WarmFixture {
  readonly name: string;
  readonly model: string;
  readonly spec: string | null;
  readonly producer: string;
  readonly tolerance: number;
  readonly keys: Record<string, { warmedFrom: number; state: number[]; next: number[] }>;
}

const fixtures = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => [d.name, join(FIXTURES, d.name)] as const)
  .sort();

describe.each(fixtures)('warm start golden %s', (_name, dir) => {
  const meta = JSON.parse(readFileSync(join(dir, 'fixture.json'), 'utf8')) as WarmFixture;

  it(`equals ${meta.producer} over each key's whole history, state and next prediction`, async () => {
    const model = await loadModel(join(dir, meta.model));
    const spec = meta.spec === null ? undefined : await loadSidecarSpec(join(dir, meta.spec));
    const store = await LmdbStore.open({ path: join(await tempDir('warm-golden'), 'state') });
    try {
      const summary = await warmKeys({
        model,
        spec,
        events: ndjsonLines(join(dir, 'history.ndjson')),
        store,
      });
      const keys = Object.keys(meta.keys).sort();
      expect(summary.rejected).toBe(0);
      expect(summary.keys).toBe(keys.length);

      const records = await store.getMany(keys);
      let stateErr = 0;
      keys.forEach((key, i) => {
        const record = records[i]!;
        expect(record.fingerprint).toBe(modelFingerprint(model));
        expect(record.warmedFrom, key).toBe(meta.keys[key]!.warmedFrom);
        stateErr = Math.max(stateErr, maxAbsError([Array.from(record.state)], [meta.keys[key]!.state]));
      });

      const features = modelFeatures(model, spec);
      const stepper = new KeyedStepper({ model, store, encodeValues: features?.encodeValues });
      const next = readFileSync(join(dir, 'next.ndjson'), 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((raw) => ({ raw, position: { kind: 'none' } as const }));
      const outcomes = await stepper.process(next);
      const predictions = outcomes.map((o) => {
        if (o.kind !== 'prediction') throw new Error(`next event not predicted: ${JSON.stringify(o)}`);
        return o.prediction;
      });
      const nextErr = maxAbsError(
        predictions.map((p) => p.output),
        predictions.map((p) => meta.keys[p.key]!.next),
      );
      for (const p of predictions) expect(p.seq).toBe(meta.keys[p.key]!.warmedFrom + 1);
      await stepper.close();
      console.log(
        `warm ${meta.name}: ${summary.events} events, ${keys.length} keys; max abs error state ${stateErr.toExponential(3)}, next prediction ${nextErr.toExponential(3)}`,
      );
      expect(stateErr).toBeLessThanOrEqual(meta.tolerance);
      expect(nextErr).toBeLessThanOrEqual(meta.tolerance);
    } finally {
      await store.close();
    }
  });
});
