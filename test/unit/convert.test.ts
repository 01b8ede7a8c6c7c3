import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { runConvert } from '../../src/commands/convert.js';
import { loadModel } from '../../src/formats/load.js';
import { modelFingerprint } from '../../src/model/index.js';
import { readNdjson, runMain } from '../helpers/cli.js';
import { tempDir, writeLines } from '../helpers/fixtures.js';

const KERAS = fileURLToPath(new URL('../golden/fixtures/keras-lstm-softmax5/model.keras', import.meta.url));
const LABELS = ['a', 'b', 'c', 'd', 'e'];
/** The fixture takes 3 values per event under input `input_layer_1`, and ends in a 5-way softmax. */
const SPEC = {
  inputs: {
    input_layer_1: [
      {
        name: 'gap',
        derived: 'time_since_previous',
        unit: 'seconds',
        first: 0,
        minmax: { min: 0, max: 100 },
      },
      { name: 'size', standard: { mean: 1, std: 2 } },
      { name: 'flag', onehot: ['yes'], unknown: 'ignore' },
    ],
  },
  output: { kind: 'classes', labels: LABELS },
};

const cli = (...args: string[]) => runMain(args);

let dir: string;
let spec: string;
beforeAll(async () => {
  dir = await tempDir('convert');
  spec = await writeLines(join(dir, 'spec.json'), [JSON.stringify(SPEC)]);
});

describe('cellstream convert', () => {
  it('writes the model in cellstream format with its spec, the same numbers, and the name and version given', async () => {
    const out = join(dir, 'm.cellstream.json');
    const run = await cli(
      'convert',
      '--model',
      KERAS,
      '--spec',
      spec,
      '--output',
      out,
      '--name',
      'bins',
      '--version',
      '3',
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const original = await loadModel(KERAS);
    const converted = await loadModel(out);
    expect(run.stdout).toBe(
      `wrote ${out}: bins@3 with its feature spec, fingerprint ${modelFingerprint(original).slice(0, 12)}\n`,
    );
    expect(modelFingerprint(converted)).toBe(modelFingerprint(original));
    expect(converted).toMatchObject({ name: 'bins', version: '3', source: 'keras' });
    expect(converted.metadata).toEqual({ ...original.metadata, features: SPEC });
    await access(join(dir, 'm.cellstream.bin'));
  });

  it('keeps an embedded spec when converting again without --spec', async () => {
    const first = join(dir, 'a.cellstream.json');
    const second = join(dir, 'b.cellstream.json');
    await runConvert({ model: KERAS, spec, output: first, name: 'bins' });
    const model = await runConvert({ model: first, output: second, version: '4' });
    expect(model).toMatchObject({ name: 'bins', version: '4' });
    expect((await loadModel(second)).metadata?.['features']).toEqual(SPEC);
  });

  it('replays values through the converted model exactly as features through the original, decoding labels', async () => {
    const out = join(dir, 'r.cellstream.json');
    await runConvert({ model: KERAS, spec, output: out });
    const t0 = Date.UTC(2024, 0, 1);
    const valuesFile = await writeLines(join(dir, 'values.ndjson'), [
      JSON.stringify({ key: 'k', ts: t0, values: { size: 3, flag: 'yes' } }),
      JSON.stringify({ key: 'j', ts: t0 + 1000, values: { size: -1, flag: 'no' } }),
      JSON.stringify({ key: 'k', ts: t0 + 50_000, values: { size: 2, flag: 'yes' } }),
    ]);
    const featuresFile = await writeLines(join(dir, 'features.ndjson'), [
      JSON.stringify({ key: 'k', ts: t0, features: [0, 1, 1] }),
      JSON.stringify({ key: 'j', ts: t0 + 1000, features: [0, -1, 0] }),
      JSON.stringify({ key: 'k', ts: t0 + 50_000, features: [0.5, 0.5, 1] }),
    ]);
    const byValues = join(dir, 'by-values.ndjson');
    const bySidecar = join(dir, 'by-sidecar.ndjson');
    const byFeatures = join(dir, 'by-features.ndjson');
    expect((await cli('replay', '--model', out, '--input', valuesFile, '--output', byValues)).code).toBe(0);
    expect(
      (await cli('replay', '--model', KERAS, '--spec', spec, '--input', valuesFile, '--output', bySidecar))
        .code,
    ).toBe(0);
    expect(
      (await cli('replay', '--model', KERAS, '--input', featuresFile, '--output', byFeatures)).code,
    ).toBe(0);

    const expected = await readNdjson(byFeatures);
    const got = await readNdjson(byValues);
    expect(got.map((p) => p.output)).toEqual(expected.map((p) => p.output));
    for (const p of got) {
      expect(p.label).toBe(LABELS[p.output.indexOf(Math.max(...p.output))]);
      expect(p.probabilities).toEqual(Object.fromEntries(LABELS.map((l, i) => [l, p.output[i]])));
    }
    expect((await readNdjson(bySidecar)).map((p) => [p.output, p.label])).toEqual(
      got.map((p) => [p.output, p.label]),
    );
  });

  it('refuses a spec that does not fit the model, naming the key, and writes nothing', async () => {
    const narrow = await writeLines(join(dir, 'narrow.json'), [
      JSON.stringify({ inputs: { input_layer_1: [{ name: 'size' }] } }),
    ]);
    const out = join(dir, 'no.cellstream.json');
    const run = await cli('convert', '--model', KERAS, '--spec', narrow, '--output', out);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `cellstream: feature spec '${narrow}' does not fit model 'model': inputs.input_layer_1: the features are 1 values wide (size 1), the model's input takes 3\n`,
    );
    await expect(access(out)).rejects.toThrow();
  });

  it('refuses class labels that do not match the outputs', async () => {
    const three = await writeLines(join(dir, 'three.json'), [
      JSON.stringify({ ...SPEC, output: { kind: 'classes', labels: ['x', 'y', 'z'] } }),
    ]);
    const run = await cli(
      'convert',
      '--model',
      KERAS,
      '--spec',
      three,
      '--output',
      join(dir, 'no.cellstream.json'),
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("output.labels: 3 labels for the model's 5 outputs");
  });

  it('refuses an invalid spec, naming the key', async () => {
    const bad = await writeLines(join(dir, 'bad.json'), [
      JSON.stringify({
        inputs: { input_layer_1: [{ name: 'gap', derived: 'time_since_previous', unit: 'days' }] },
      }),
    ]);
    const run = await cli(
      'convert',
      '--model',
      KERAS,
      '--spec',
      bad,
      '--output',
      join(dir, 'no.cellstream.json'),
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `cellstream: feature spec '${bad}' is invalid: inputs.input_layer_1[0].first: time_since_previous needs first, its value on a key's first event\n`,
    );
  });

  it('refuses an output that is not a .cellstream.json, and an empty version', async () => {
    await expect(runConvert({ model: KERAS, output: join(dir, 'm.json') })).rejects.toMatchObject({
      code: 'USAGE',
      message: `--output must end in .cellstream.json, got '${join(dir, 'm.json')}'`,
    });
    await expect(
      runConvert({ model: KERAS, output: join(dir, 'v.cellstream.json'), version: ' ' }),
    ).rejects.toMatchObject({ code: 'USAGE', message: '--version must not be empty' });
  });
});

describe('cellstream inspect with a feature spec', () => {
  it('prints the embedded spec below the network', async () => {
    const out = join(dir, 'i.cellstream.json');
    await runConvert({ model: KERAS, spec, output: out, name: 'bins' });
    const run = await cli('inspect', '--model', out);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('head 0      Dense 8 -> 5  softmax\n');
    expect(run.stdout).toContain(
      [
        'features    input input_layer_1',
        "  [0]      gap   time since the key's previous event, in seconds (first event: 0), minmax [0, 100] -> [0, 1]",
        '  [1]      size  values.size, standard mean 1 std 2',
        '  [2]      flag  values.flag, one-hot "yes", unknown: all zeros',
        'decoded     label, probabilities over "a", "b", "c", "d", "e"',
        '',
      ].join('\n'),
    );
  });

  it('checks a --spec against the model', async () => {
    const wide = await writeLines(join(dir, 'wide.json'), [
      JSON.stringify({ inputs: { input_layer_1: [{ name: 'c', onehot: ['p', 'q', 'r', 's'] }] } }),
    ]);
    const run = await cli('inspect', '--model', KERAS, '--spec', wide);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      "inputs.input_layer_1: the features are 4 values wide (c 4), the model's input takes 3",
    );
  });
});
