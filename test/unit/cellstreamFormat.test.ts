import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ModelInvalidError } from '../../src/errors.js';
import { loadCellstreamManifest, saveCellstreamModel } from '../../src/formats/cellstream/index.js';
import { modelFingerprint, runSequence } from '../../src/model/index.js';
import { prng, randomArray, smallModel } from '../helpers/models.js';

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'cellstream-format-'));
}

describe("cellstream's own format", () => {
  it('round-trips a model bit for bit', async () => {
    const dir = await tmp();
    const model = { ...smallModel(4), version: '3', metadata: { labels: ['a', 'b', 'c', 'd'] } };
    const path = join(dir, 'small.cellstream.json');
    await saveCellstreamModel(model, path);
    const manifest = JSON.parse(await readFile(path, 'utf8'));
    expect(manifest.weights).toBe('small.cellstream.bin');
    const back = await loadCellstreamManifest(manifest, path);
    expect(modelFingerprint(back)).toBe(modelFingerprint(model));
    expect(back.version).toBe('3');
    expect(back.metadata).toEqual({ labels: ['a', 'b', 'c', 'd'] });
    const rnd = prng(5);
    const steps = Array.from({ length: 6 }, () => [randomArray(3, rnd, 1)]);
    expect(runSequence(back, steps)).toEqual(runSequence(model, steps));
  });

  it('refuses weights that do not match the manifest', async () => {
    const dir = await tmp();
    const path = join(dir, 'm.cellstream.json');
    await saveCellstreamModel(smallModel(1), path);
    const manifest = JSON.parse(await readFile(path, 'utf8'));
    const bin = join(dir, 'm.cellstream.bin');
    const bytes = await readFile(bin);
    bytes[10] ^= 0xff;
    await writeFile(bin, bytes);
    await expect(loadCellstreamManifest(manifest, path)).rejects.toThrow(/does not match its fingerprint/);
    await writeFile(bin, bytes.subarray(0, 16));
    await expect(loadCellstreamManifest(manifest, path)).rejects.toThrow(/lies outside the weights file/);
  });

  it('refuses a newer format version with advice', async () => {
    const dir = await tmp();
    const path = join(dir, 'm.cellstream.json');
    await saveCellstreamModel(smallModel(1), path);
    const manifest = { ...JSON.parse(await readFile(path, 'utf8')), formatVersion: 99 };
    const err = await loadCellstreamManifest(manifest, path).catch((e) => e);
    expect(err).toBeInstanceOf(ModelInvalidError);
    expect(err.message).toMatch(/format version 99 is not supported/);
  });

  it('refuses a path without the manifest suffix', async () => {
    await expect(saveCellstreamModel(smallModel(1), '/tmp/x.json')).rejects.toThrow(
      /must end in \.cellstream\.json/,
    );
  });
});
