import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadTfjsModel } from '../../src/formats/tfjs/index.js';
import { createState, step } from '../../src/model/index.js';

// Expected outputs were written by @tensorflow/tfjs itself (make_fixtures.mjs) running each
// key's whole sequence; here the same events are applied one step at a time, keys interleaved.

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

interface FixtureMeta {
  name: string;
  format: string;
  model: string;
  tolerance: number;
  outputSize: number;
}

interface EventLine {
  key: string;
  ts: number;
  features: number[];
  reset?: boolean;
}

interface ExpectedLine {
  key: string;
  ts: number;
  output: number[];
}

function readNdjson<T>(file: string): T[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T);
}

const fixtures = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => path.join(FIXTURES, d.name))
  .map((dir) => ({
    dir,
    meta: JSON.parse(readFileSync(path.join(dir, 'fixture.json'), 'utf8')) as FixtureMeta,
  }))
  .filter((f) => f.meta.format === 'tfjs');

describe('TF.js golden fixtures', () => {
  it('finds the fixtures', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(5);
  });

  for (const { dir, meta } of fixtures) {
    it(`${meta.name}: streaming one step per event matches tfjs`, async () => {
      const model = await loadTfjsModel(path.join(dir, meta.model));
      expect(model.source).toBe('tfjs');
      const events = readNdjson<EventLine>(path.join(dir, 'events.ndjson'));
      const expected = readNdjson<ExpectedLine>(path.join(dir, 'expected.ndjson'));
      expect(expected.length).toBe(events.length);

      const states = new Map<string, Float32Array>();
      let maxErr = 0;
      events.forEach((event, n) => {
        const want = expected[n];
        expect([want.key, want.ts]).toEqual([event.key, event.ts]);
        const state = (!event.reset && states.get(event.key)) || createState(model);
        const result = step(model, state, [event.features]);
        states.set(event.key, result.state);
        expect(result.output.length).toBe(meta.outputSize);
        for (let j = 0; j < meta.outputSize; j++) {
          maxErr = Math.max(maxErr, Math.abs(result.output[j] - want.output[j]));
        }
      });
      console.log(`${meta.name}: max abs error ${maxErr.toExponential(3)} over ${events.length} events`);
      expect(maxErr).toBeLessThanOrEqual(meta.tolerance);
    });
  }
});
