import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseOnnxModel } from '../../src/formats/onnx/index.js';
import { createState, step } from '../../src/model/index.js';

// Expected outputs come from PyTorch or onnxruntime (test/golden/onnx/make_fixtures.py); this test
// only replays the events one step at a time through the imported model and compares.
const root = join(import.meta.dirname, 'fixtures');

interface Fixture {
  name: string;
  format: string;
  model: string;
  tolerance: number;
  outputSize: number;
}

const readNdjson = <T>(path: string): T[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);

const fixtures = existsSync(root)
  ? readdirSync(root)
      .map((dir) => ({
        dir: join(root, dir),
        meta: JSON.parse(readFileSync(join(root, dir, 'fixture.json'), 'utf8')) as Fixture,
      }))
      .filter((f) => f.meta.format === 'onnx')
  : [];

describe('ONNX golden fixtures, streamed one event at a time', () => {
  it('finds the fixtures', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(12);
  });

  for (const { dir, meta } of fixtures) {
    it(meta.name, () => {
      const model = parseOnnxModel(readFileSync(join(dir, meta.model)), meta.name);
      const events = readNdjson<{ key: string; ts: number; features: number[]; reset?: boolean }>(
        join(dir, 'events.ndjson'),
      );
      const expected = readNdjson<{ key: string; ts: number; output: number[] }>(
        join(dir, 'expected.ndjson'),
      );
      expect(expected).toHaveLength(events.length);
      const states = new Map<string, Float32Array>();
      let worst = 0;
      events.forEach((e, n) => {
        const want = expected[n];
        expect([want.key, want.ts]).toEqual([e.key, e.ts]);
        const before = e.reset ? undefined : states.get(e.key);
        const r = step(model, before ?? createState(model), [e.features]);
        states.set(e.key, r.state);
        expect(r.output).toHaveLength(meta.outputSize);
        r.output.forEach((v, i) => {
          worst = Math.max(worst, Math.abs(v - want.output[i]));
        });
      });
      console.log(`${meta.name}: max abs error ${worst.toExponential(2)} over ${events.length} events`);
      expect(worst).toBeLessThanOrEqual(meta.tolerance);
    });
  }
});
