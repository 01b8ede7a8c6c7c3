import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelFormatError } from '../../src/errors.js';
import { saveCellstreamModel } from '../../src/formats/cellstream/index.js';
import { loadModel } from '../../src/formats/load.js';
import { modelFingerprint, outputSize } from '../../src/model/index.js';
import { listFixtures } from '../golden/harness.js';

describe('loadModel', () => {
  it.each(listFixtures().map((f) => [f.meta.name, f] as const))(
    'loads fixture %s by its file alone',
    async (_, f) => {
      const model = await loadModel(f.modelPath);
      expect(model.source).toBe(f.meta.format);
      expect(outputSize(model)).toBe(f.meta.outputSize);
    },
  );

  it('loads every format into one model that converts to cellstream format and back unchanged', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cellstream-load-'));
    for (const f of listFixtures()) {
      const model = await loadModel(f.modelPath);
      const out = join(dir, `${f.meta.name}.cellstream.json`);
      await saveCellstreamModel(model, out);
      const back = await loadModel(out);
      expect(modelFingerprint(back)).toBe(modelFingerprint(model));
    }
  });

  it('says which formats exist when the extension is unknown', async () => {
    const err = await loadModel('/tmp/model.pb').catch((e) => e);
    expect(err).toBeInstanceOf(ModelFormatError);
    expect(err.message).toMatch(/cannot tell the format of '\/tmp\/model.pb'; supported: \.onnx/);
  });

  it('names a missing file', async () => {
    await expect(loadModel('/nonexistent/m.cellstream.json')).rejects.toThrow(
      "model file '/nonexistent/m.cellstream.json' does not exist",
    );
    await expect(loadModel('/nonexistent/m.onnx')).rejects.toThrow(/nonexistent\/m\.onnx/);
  });

  it('refuses JSON that is no model', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cellstream-load-'));
    const p = join(dir, 'x.json');
    await writeFile(p, '{"hello": 1}');
    await expect(loadModel(p)).rejects.toThrow(/neither a cellstream manifest/);
    await writeFile(p, '{"hello": ');
    await expect(loadModel(p)).rejects.toThrow(/is not valid JSON/);
  });
});
