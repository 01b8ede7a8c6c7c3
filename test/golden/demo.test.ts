import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runReplay } from '../../src/commands/replay.js';
import { loadSidecarSpec } from '../../src/features/loadSpec.js';
import { loadModel } from '../../src/formats/load.js';
import { modelFingerprint } from '../../src/model/index.js';
import { tempDir } from '../helpers/fixtures.js';
import { maxAbsError } from './harness.js';

/**
 * The demo (demo/train_visits.py): replaying demo/visits.ndjson — named values, the interval
 * derived from ts — through each demo model gives Keras's own per-step outputs, so this checks
 * the feature spec end to end as well as the numerics.
 */
const DEMO = fileURLToPath(new URL('../../demo/', import.meta.url));
const EVENTS = join(DEMO, 'visits.ndjson');
const TOLERANCE = 1e-5;

interface Row {
  key: string;
  ts: number;
  seq: number;
  model: string;
  output: number[];
  [decoded: string]: unknown;
}

const ndjson = <T>(path: string): T[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);

let dir: string;
beforeAll(async () => {
  dir = await tempDir('demo');
});

async function replay(model: string, spec?: string, input = EVENTS, state?: string): Promise<Row[]> {
  const output = join(dir, `${Math.random().toString(36).slice(2)}.ndjson`);
  const summary = await runReplay({
    model: await loadModel(join(DEMO, model)),
    spec: spec === undefined ? undefined : await loadSidecarSpec(join(DEMO, spec)),
    input,
    state,
    output,
    stdout: new PassThrough(),
    stderr: new PassThrough(),
  });
  expect(summary.rejected).toBe(0);
  return ndjson<Row>(output);
}

describe.each([
  ['visits', 'regression'],
  ['visits-classes', 'classes'],
  ['visits-v2', 'regression'],
])('demo model %s', (stem) => {
  const expected = ndjson<{ key: string; ts: number; output: number[] }>(
    join(DEMO, `${stem}.expected.ndjson`),
  );

  it.each([
    ['the converted cellstream model', `${stem}.cellstream.json`, undefined],
    ['the .keras with its sidecar spec', `${stem}.keras`, `${stem}.spec.json`],
  ])('replay through %s matches Keras at every step', async (_what, model, spec) => {
    const rows = await replay(model, spec);
    expect(rows.map((r) => [r.key, r.ts])).toEqual(expected.map((e) => [e.key, e.ts]));
    const err = maxAbsError(
      rows.map((r) => r.output),
      expected.map((e) => e.output),
    );
    console.log(`demo ${model}: max abs error ${err.toExponential(3)} over ${rows.length} events`);
    expect(err).toBeLessThanOrEqual(TOLERANCE);
  });

  it('a replay split in two over a --state directory derives the intervals from the stored ts', async () => {
    const lines = readFileSync(EVENTS, 'utf8').trimEnd().split('\n');
    const first = join(dir, `${stem}-first.ndjson`);
    const second = join(dir, `${stem}-second.ndjson`);
    writeFileSync(first, `${lines.slice(0, 140).join('\n')}\n`);
    writeFileSync(second, `${lines.slice(140).join('\n')}\n`);
    const state = join(dir, `${stem}-state`);
    const rows = [
      ...(await replay(`${stem}.cellstream.json`, undefined, first, state)),
      ...(await replay(`${stem}.cellstream.json`, undefined, second, state)),
    ];
    expect(
      maxAbsError(
        rows.map((r) => r.output),
        expected.map((e) => e.output),
      ),
    ).toBeLessThanOrEqual(TOLERANCE);
  });

  it('the converted model is the .keras one with its spec embedded', async () => {
    const keras = await loadModel(join(DEMO, `${stem}.keras`));
    const converted = await loadModel(join(DEMO, `${stem}.cellstream.json`));
    expect(modelFingerprint(converted)).toBe(modelFingerprint(keras));
    expect(converted.metadata?.['features']).toEqual(
      (await loadSidecarSpec(join(DEMO, `${stem}.spec.json`))).spec,
    );
  });
});

describe('demo decoded predictions', () => {
  it('the classifier adds the argmax label and probabilities by label', async () => {
    const spec = JSON.parse(readFileSync(join(DEMO, 'visits-classes.spec.json'), 'utf8'));
    const labels: string[] = spec.output.labels;
    const rows = await replay('visits-classes.cellstream.json');
    for (const r of rows) {
      expect(r.model).toBe('visits-classes@1');
      expect(r.label).toBe(labels[r.output.indexOf(Math.max(...r.output))]);
      expect(r.probabilities).toEqual(Object.fromEntries(labels.map((l, i) => [l, r.output[i]])));
    }
    expect(new Set(rows.map((r) => r.label)).size).toBeGreaterThan(1);
  });

  it('the regression model adds the next interval in days, inverse min-max scaled', async () => {
    const spec = JSON.parse(readFileSync(join(DEMO, 'visits.spec.json'), 'utf8'));
    const { min, max } = spec.output.inverse.minmax;
    const rows = await replay('visits.cellstream.json');
    for (const r of rows) {
      expect(r.model).toBe('visits@1');
      expect(r['next_interval_days']).toBeCloseTo(r.output[0] * (max - min) + min, 9);
    }
  });

  it('visits-v2 is the second version of visits: same name and features, other weights', async () => {
    const [v1, v2] = await Promise.all([
      loadModel(join(DEMO, 'visits.cellstream.json')),
      loadModel(join(DEMO, 'visits-v2.cellstream.json')),
    ]);
    expect([v1.name, v1.version, v2.name, v2.version]).toEqual(['visits', '1', 'visits', '2']);
    expect(modelFingerprint(v2)).not.toBe(modelFingerprint(v1));
    expect(v2.metadata?.['features']).toEqual(v1.metadata?.['features']);
    const rows = await replay('visits-v2.cellstream.json');
    expect(rows.every((r) => r.model === 'visits@2')).toBe(true);
  });

  it('the demo stays small', () => {
    const bytes = readdirSync(DEMO).reduce((n, f) => n + statSync(join(DEMO, f)).size, 0);
    expect(bytes).toBeLessThan(1_000_000);
  });
});
