import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseOnnxModel } from '../../src/formats/onnx/index.js';
import { createState, step } from '../../src/model/index.js';
import { listFixtures, maxAbsError } from './harness.js';

// Expected outputs were written by PyTorch or onnxruntime (onnx/make_fixtures.py) running each
// key's whole sequence; here the same events are applied one step at a time, keys interleaved.

interface EventLine {
  key: string;
  ts: number;
  features: number[];
  reset?: boolean;
}

const fixtures = listFixtures('onnx');

describe('ONNX golden fixtures', () => {
  it('finds the fixtures', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(16);
  });

  for (const fixture of fixtures) {
    const { meta } = fixture;
    it(`${meta.name}: streaming one step per event matches ${meta.oracle}`, () => {
      const model = parseOnnxModel(readFileSync(fixture.modelPath), meta.name);
      expect(model.source).toBe('onnx');
      const events = fixture.events as unknown as EventLine[];
      expect(fixture.expected.map((e) => [e.key, e.ts])).toEqual(events.map((e) => [e.key, e.ts]));

      const states = new Map<string, Float32Array>();
      const actual = events.map((event) => {
        const state = (!event.reset && states.get(event.key)) || createState(model);
        const result = step(model, state, [event.features]);
        states.set(event.key, result.state);
        return [...result.output];
      });
      expect(actual[0]).toHaveLength(meta.outputSize);
      const err = maxAbsError(
        actual,
        fixture.expected.map((e) => e.output),
      );
      console.log(`${meta.name}: max abs error ${err.toExponential(3)} over ${events.length} events`);
      expect(err).toBeLessThanOrEqual(meta.tolerance);
    });
  }
});
