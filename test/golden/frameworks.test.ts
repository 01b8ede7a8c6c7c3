import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadKerasModel } from '../../src/formats/keras/index.js';
import { parseOnnxModel } from '../../src/formats/onnx/index.js';
import { loadTfjsModel } from '../../src/formats/tfjs/index.js';
import type { Model } from '../../src/model/index.js';
import { type Fixture, listFixtures, maxAbsError, streamThroughCore } from './harness.js';

// Each fixture's expected outputs were written by the framework itself running each key's whole
// sequence (scripts: onnx/make_fixtures.py, keras/make_fixtures.py, tfjs/make_fixtures.mjs). Here
// each format's own importer loads the model and the core applies the events one step at a time.
// (test/integration/replayGolden.test.ts runs the same fixtures through the whole replay engine.)

const importers: Record<string, (f: Fixture) => Promise<Model>> = {
  onnx: async (f) => parseOnnxModel(readFileSync(f.modelPath), f.meta.name),
  keras: (f) => loadKerasModel(f.modelPath),
  tfjs: (f) => loadTfjsModel(f.modelPath),
};

/** Fewest fixtures each format must have, so a lost folder cannot pass unnoticed. */
const minimum: Record<string, number> = { onnx: 16, keras: 14, tfjs: 5 };

describe.each(Object.keys(importers))('%s golden fixtures', (format) => {
  const fixtures = listFixtures(format);

  it(`has at least ${minimum[format]} fixtures`, () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(minimum[format]);
  });

  it.each(fixtures.map((f) => [f.meta.name, f] as const))(
    '%s: one step per event equals the framework',
    async (_, f) => {
      const model = await importers[format](f);
      expect(model.source).toBe(format);
      expect(f.expected.map((e) => e.key)).toEqual(f.events.map((e) => e.key));
      const outputs = streamThroughCore(model, f);
      expect(outputs[0]).toHaveLength(f.meta.outputSize);
      const err = maxAbsError(
        outputs,
        f.expected.map((e) => e.output),
      );
      expect(err).toBeLessThanOrEqual(f.meta.tolerance);
    },
  );
});
