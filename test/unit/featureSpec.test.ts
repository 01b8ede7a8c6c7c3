import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CellstreamError } from '../../src/errors.js';
import type { Prediction } from '../../src/events/types.js';
import { checkSpecFitsModel } from '../../src/features/checkSpec.js';
import { describeFeatureSpec } from '../../src/features/describe.js';
import { loadFeatureSpec } from '../../src/features/loadSpec.js';
import { embeddedSpec, modelFeatures, withSpec } from '../../src/features/modelFeatures.js';
import { type FeatureSpec, parseFeatureSpec } from '../../src/features/spec.js';
import { modelFingerprint } from '../../src/model/index.js';
import type { Model } from '../../src/model/types.js';
import { fourInputLstm, twoInputModel } from '../helpers/models.js';

function failure(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    return { code: (err as CellstreamError).code, message: (err as CellstreamError).message };
  }
  throw new Error('expected a failure');
}

/** fourInputLstm takes 4 values per event: an interval, a spend and a two-way channel. */
const SPEC = {
  inputs: {
    x: [
      {
        name: 'interval',
        derived: 'time_since_previous',
        unit: 'days',
        first: 0,
        minmax: { min: 0, max: 100 },
      },
      { name: 'spend', source: 'amount', standard: { mean: 40, std: 10 } },
      { name: 'channel', onehot: ['app', 'store'] },
    ],
  },
};

const DAY = 86_400_000;
const spec = (extra: object = {}): FeatureSpec => parseFeatureSpec({ ...SPEC, ...extra }, 'test');
const features = (s: FeatureSpec = spec(), model: Model = fourInputLstm()) =>
  modelFeatures(model, { spec: s, where: "'s.json'" })!;
const first = { ts: 10 * DAY, previousTs: undefined };
const prediction = (output: number[]): Prediction => ({ key: 'k', ts: 1, seq: 1, model: 'm@1', output });

describe('parseFeatureSpec', () => {
  it.each<[string, unknown, string]>([
    [
      'a misspelt key',
      { inputs: { x: [{ name: 'a', minmx: { min: 0, max: 1 } }] } },
      'inputs.x[0].minmx: unknown key',
    ],
    ['a misspelt top-level key', { inputs: { x: [{ name: 'a' }] }, ouput: {} }, 'ouput: unknown key'],
    [
      'a non-number',
      { inputs: { x: [{ name: 'a', standard: { mean: 'zero', std: 1 } }] } },
      'inputs.x[0].standard.mean: Invalid input: expected number, received string',
    ],
    [
      'max below min',
      { inputs: { x: [{ name: 'a', minmax: { min: 2, max: 1 } }] } },
      'inputs.x[0].minmax.max: max must not be below min',
    ],
    [
      'an empty feature_range',
      { inputs: { x: [{ name: 'a', minmax: { min: 0, max: 1, feature_range: [1, 1] } }] } },
      'inputs.x[0].minmax.feature_range: feature_range must be [low, high] with low < high',
    ],
    [
      'a negative std',
      { inputs: { x: [{ name: 'a', standard: { mean: 0, std: -1 } }] } },
      'inputs.x[0].standard.std: Too small',
    ],
    [
      'two scalings',
      { inputs: { x: [{ name: 'a', minmax: { min: 0, max: 1 }, standard: { mean: 0, std: 1 } }] } },
      'inputs.x[0].standard: give one scaling, not minmax and standard',
    ],
    [
      'a scaled one-hot',
      { inputs: { x: [{ name: 'a', onehot: ['p'], minmax: { min: 0, max: 1 } }] } },
      'inputs.x[0].minmax: a one-hot feature is not scaled',
    ],
    [
      'repeated categories',
      { inputs: { x: [{ name: 'a', onehot: ['p', 'p'] }] } },
      'inputs.x[0].onehot: categories must be distinct',
    ],
    [
      'unknown on a numeric feature',
      { inputs: { x: [{ name: 'a', unknown: 'ignore' }] } },
      'inputs.x[0].unknown: unknown belongs to a one-hot feature',
    ],
    [
      'a derived feature without first',
      { inputs: { x: [{ name: 'a', derived: 'time_since_previous', unit: 'days' }] } },
      "inputs.x[0].first: time_since_previous needs first, its value on a key's first event",
    ],
    [
      'a bad unit',
      { inputs: { x: [{ name: 'a', derived: 'time_since_previous', unit: 'weeks', first: 0 }] } },
      'inputs.x[0].unit: Invalid option',
    ],
    [
      'a unit on a plain feature',
      { inputs: { x: [{ name: 'a', unit: 'days' }] } },
      'inputs.x[0].unit: unit belongs to a derived feature',
    ],
    [
      'a derived feature with a source',
      { inputs: { x: [{ name: 'a', source: 'b', derived: 'time_since_previous', unit: 'ms', first: 0 }] } },
      'inputs.x[0].source: a derived feature has no source',
    ],
    [
      'an unknown derivation',
      { inputs: { x: [{ name: 'a', derived: 'time_until_next' }] } },
      'inputs.x[0].derived: Invalid input: expected "time_since_previous"',
    ],
    [
      'two features of one name',
      { inputs: { x: [{ name: 'a' }, { name: 'a' }] } },
      "inputs.x[1].name: 'a' names two features",
    ],
    ['an empty feature list', { inputs: { x: [] } }, 'inputs.x: Too small'],
    [
      'an unknown output kind',
      { inputs: { x: [{ name: 'a' }] }, output: { kind: 'ranking' } },
      "output.kind: Invalid discriminator value. Expected 'regression' | 'classes'",
    ],
    [
      'repeated labels',
      { inputs: { x: [{ name: 'a' }] }, output: { kind: 'classes', labels: ['p', 'p'] } },
      'output.labels: labels must be distinct',
    ],
    [
      'a reserved output name',
      { inputs: { x: [{ name: 'a' }] }, output: { kind: 'regression', name: 'seq' } },
      'output.name: name must not be one of key, ts, seq, model, output, label, probabilities',
    ],
    [
      'an inverse without a scaling',
      { inputs: { x: [{ name: 'a' }] }, output: { kind: 'regression', inverse: {} } },
      'output.inverse: give exactly one of minmax or standard',
    ],
    ['no inputs', {}, 'inputs: Invalid input: expected record, received undefined'],
    ['not an object', [1], '(the spec): Invalid input: expected object, received array'],
  ])('rejects %s, naming the key', (_what, json, problem) => {
    const f = failure(() => parseFeatureSpec(json, "'s.json'"));
    expect(f.code).toBe('SPEC_INVALID');
    expect(f.message).toContain(`feature spec 's.json' is invalid: `);
    expect(f.message).toContain(problem);
  });

  it('accepts the full format', () => {
    const output = {
      kind: 'regression',
      name: 'days',
      inverse: { minmax: { min: 1, max: 9, feature_range: [-1, 1] } },
    };
    const s = spec({ output });
    expect(s.inputs['x']).toHaveLength(3);
    expect(s.output).toEqual(output);
  });
});

describe('checkSpecFitsModel', () => {
  it.each<[string, FeatureSpec, Model, string]>([
    [
      'a width that differs from the input',
      parseFeatureSpec({ inputs: { x: [{ name: 'a' }, { name: 'c', onehot: ['p', 'q', 'r', 's'] }] } }, 't'),
      fourInputLstm(),
      "inputs.x: the features are 5 values wide (a 1, c 4), the model's input takes 4",
    ],
    [
      'an input the model lacks',
      parseFeatureSpec({ inputs: { ...SPEC.inputs, y: [{ name: 'a' }] } }, 't'),
      fourInputLstm(),
      "inputs.y: the model has no input 'y'; its inputs are 'x' (4 values)",
    ],
    [
      'a model input without features',
      parseFeatureSpec({ inputs: { a: [{ name: 'p' }, { name: 'q' }] } }, 't'),
      twoInputModel(),
      "inputs: the model's input 'b' (1 values) has no features",
    ],
    [
      'labels that do not match the outputs',
      spec({ output: { kind: 'classes', labels: ['p', 'q', 'r'] } }),
      fourInputLstm({ kind: 'softmax' }),
      "output.labels: 3 labels for the model's 2 outputs",
    ],
    [
      'classes of a network without softmax',
      spec({ output: { kind: 'classes', labels: ['p', 'q'] } }),
      fourInputLstm(),
      'output.kind: classes needs a network that ends in softmax, and this one ends in sigmoid',
    ],
  ])('rejects %s', (_what, s, model, problem) => {
    expect(failure(() => checkSpecFitsModel(s, model, "'s.json'"))).toEqual({
      code: 'SPEC_INVALID',
      message: `feature spec 's.json' does not fit model '${model.name}': ${problem}`,
    });
  });
});

describe('the values encoder', () => {
  const { encodeValues } = features();

  it('derives, scales and one-hot encodes, in spec order', () => {
    expect(encodeValues({ amount: 55, channel: 'store' }, first)).toEqual([
      Float32Array.from([0, 1.5, 0, 1]),
    ]);
    expect(
      encodeValues({ amount: 20, channel: 'app', other: 'ignored' }, { ts: 10 * DAY, previousTs: 5 * DAY }),
    ).toEqual([Float32Array.from([0.05, -2, 1, 0])]);
  });

  it.each<[string, number]>([
    ['days', 2.5],
    ['hours', 60],
    ['minutes', 3600],
    ['seconds', 216_000],
    ['ms', 216_000_000],
  ])('measures time since the previous event in %s', (unit, expected) => {
    const s = parseFeatureSpec(
      {
        inputs: {
          x: [
            { name: 't', derived: 'time_since_previous', unit, first: -1 },
            { name: 'a' },
            { name: 'b' },
            { name: 'c' },
          ],
        },
      },
      't',
    );
    const enc = features(s).encodeValues;
    const values = { a: 0, b: 0, c: 0 };
    expect(enc(values, { ts: 1e12 + 2.5 * DAY, previousTs: 1e12 })[0][0]).toBe(expected);
    expect(enc(values, { ts: 1e12, previousTs: undefined })[0][0]).toBe(-1);
    expect(enc(values, { ts: 1e12, previousTs: 1e12 })[0][0]).toBe(0);
  });

  it('scales as sklearn does: feature_range, clip, and constant features', () => {
    const s = parseFeatureSpec(
      {
        inputs: {
          x: [
            { name: 'a', minmax: { min: 10, max: 20, feature_range: [-1, 1] } },
            { name: 'b', minmax: { min: 10, max: 20, clip: true } },
            { name: 'c', minmax: { min: 5, max: 5 } },
            { name: 'd', standard: { mean: 3, std: 0 } },
          ],
        },
      },
      't',
    );
    const enc = features(s).encodeValues;
    expect(enc({ a: 12.5, b: 30, c: 7, d: 1 }, first)).toEqual([Float32Array.from([-0.5, 1, 2, -2])]);
    expect(enc({ a: 20, b: 5, c: 5, d: 3 }, first)).toEqual([Float32Array.from([1, 0, 0, 0])]);
  });

  it('encodes an unknown category as all zeros when the spec says ignore', () => {
    const s = parseFeatureSpec(
      { inputs: { x: [{ name: 'n' }, { name: 'c', onehot: ['p', 3, 'r'], unknown: 'ignore' }] } },
      't',
    );
    const enc = features(s).encodeValues;
    expect(enc({ n: 1, c: 'zzz' }, first)).toEqual([Float32Array.from([1, 0, 0, 0])]);
    expect(enc({ n: 1, c: 3 }, first)).toEqual([Float32Array.from([1, 0, 1, 0])]);
    // Categories match by value and type: the string "3" is not the number 3.
    expect(enc({ n: 1, c: '3' }, first)).toEqual([Float32Array.from([1, 0, 0, 0])]);
  });

  it('encodes each input of a multi-input model from its own features, in model order', () => {
    const s = parseFeatureSpec(
      {
        inputs: {
          b: [{ name: 'gap', derived: 'time_since_previous', unit: 'hours', first: 0 }],
          a: [{ name: 'p' }, { name: 'q', standard: { mean: 1, std: 2 } }],
        },
      },
      't',
    );
    const enc = features(s, twoInputModel()).encodeValues;
    expect(enc({ p: 4, q: 5 }, { ts: 7_200_000, previousTs: 0 })).toEqual([
      Float32Array.from([4, 2]),
      Float32Array.from([2]),
    ]);
  });

  it.each<[string, Record<string, unknown>, { ts: number; previousTs: number | undefined }, string, string]>([
    [
      'an unknown category',
      { amount: 1, channel: 'web' },
      first,
      'EVENT_UNKNOWN_CATEGORY',
      'unknown category: values.channel is "web", not one of "app", "store"',
    ],
    [
      'a missing value',
      { channel: 'app' },
      first,
      'EVENT_INVALID',
      'invalid event: values.amount is missing',
    ],
    [
      'a null value',
      { amount: null, channel: 'app' },
      first,
      'EVENT_INVALID',
      'invalid event: values.amount is missing',
    ],
    ['a missing category', { amount: 1 }, first, 'EVENT_INVALID', 'invalid event: values.channel is missing'],
    [
      'a non-numeric value',
      { amount: '55', channel: 'app' },
      first,
      'EVENT_INVALID',
      'invalid event: values.amount must be a finite number, got string "55"',
    ],
    [
      'a boolean value',
      { amount: true, channel: 'app' },
      first,
      'EVENT_INVALID',
      'invalid event: values.amount must be a finite number, got boolean true',
    ],
    [
      'an infinite value (JSON 1e999)',
      { amount: Number.POSITIVE_INFINITY, channel: 'app' },
      first,
      'EVENT_INVALID',
      'invalid event: values.amount must be a finite number, got number Infinity',
    ],
    [
      'a value that scales beyond float32',
      { amount: 1e300, channel: 'app' },
      first,
      'EVENT_INVALID',
      'invalid event: values.amount scales to 1e+299, outside the float32 range',
    ],
    [
      'an event older than the key’s previous one',
      { amount: 1, channel: 'app' },
      { ts: Date.UTC(2024, 0, 1), previousTs: Date.UTC(2024, 0, 2) },
      'EVENT_INVALID',
      "invalid event: ts 2024-01-01T00:00:00.000Z is before the key's previous event (2024-01-02T00:00:00.000Z), so interval would be negative; send the key's events in time order, or reset the key",
    ],
  ])('rejects %s, naming the field', (_what, values, ctx, code, message) => {
    expect(failure(() => encodeValues(values, ctx))).toEqual({ code, message });
  });
});

describe('the prediction decoder', () => {
  it('adds the argmax label and probabilities by label, leaving output as it is', () => {
    const { decode } = features(
      spec({ output: { kind: 'classes', labels: ['p', 'q'] } }),
      fourInputLstm({ kind: 'softmax' }),
    );
    const p = prediction([0.25, 0.75]);
    expect(decode!(p)).toEqual({
      ...p,
      output: [0.25, 0.75],
      label: 'q',
      probabilities: { p: 0.25, q: 0.75 },
    });
    expect(decode!(prediction([0.5, 0.5])).label).toBe('p');
  });

  it.each<[string, object, number[], Record<string, unknown>]>([
    ['min-max', { kind: 'regression', inverse: { minmax: { min: 0, max: 120 } } }, [0.25], { value: 30 }],
    [
      'min-max with a feature_range, named',
      { kind: 'regression', name: 'days', inverse: { minmax: { min: 0, max: 120, feature_range: [-1, 1] } } },
      [0],
      { days: 60 },
    ],
    ['standard', { kind: 'regression', inverse: { standard: { mean: 40, std: 10 } } }, [-0.5], { value: 35 }],
    ['no inverse', { kind: 'regression' }, [0.125], { value: 0.125 }],
    [
      'several outputs',
      { kind: 'regression', inverse: { standard: { mean: 1, std: 2 } } },
      [0, 1],
      { value: [1, 3] },
    ],
  ])('adds the inverse-scaled regression value: %s', (_what, output, out, decoded) => {
    const { decode } = features(spec({ output }));
    expect(decode!(prediction(out))).toEqual({ ...prediction(out), ...decoded });
  });

  it('is absent when the spec says nothing of the output', () => {
    expect(features().decode).toBeUndefined();
  });
});

describe('where specs come from', () => {
  it('a model carries its spec in metadata.features without changing its fingerprint', () => {
    const model = fourInputLstm();
    const carried = withSpec(model, spec());
    expect(modelFingerprint(carried)).toBe(modelFingerprint(model));
    expect(embeddedSpec(carried)).toEqual(spec());
    expect(modelFeatures(carried)?.spec).toEqual(spec());
    expect(modelFeatures(model)).toBeUndefined();
  });

  it('a sidecar spec wins over the embedded one', () => {
    const carried = withSpec(fourInputLstm(), spec());
    const other = parseFeatureSpec(
      { inputs: { x: [{ name: 'a' }, { name: 'b' }, { name: 'c' }, { name: 'd' }] } },
      't',
    );
    expect(modelFeatures(carried, { spec: other, where: 't' })?.spec).toEqual(other);
  });

  it('an embedded spec that is malformed or does not fit is an error naming the model', () => {
    const bad = { ...fourInputLstm(), metadata: { features: { inputs: { x: [{ name: 'a', scale: 2 }] } } } };
    expect(failure(() => modelFeatures(bad))).toEqual({
      code: 'SPEC_INVALID',
      message: "feature spec metadata.features of model 'four' is invalid: inputs.x[0].scale: unknown key",
    });
    const narrow = withSpec(fourInputLstm(), parseFeatureSpec({ inputs: { x: [{ name: 'a' }] } }, 't'));
    expect(failure(() => modelFeatures(narrow)).message).toBe(
      "feature spec metadata.features of model 'four' does not fit model 'four': inputs.x: the features are 1 values wide (a 1), the model's input takes 4",
    );
  });

  it('loads a sidecar file, and names it when it is not JSON or not there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cellstream-spec-'));
    const good = join(dir, 'good.json');
    const broken = join(dir, 'broken.json');
    await writeFile(good, JSON.stringify(SPEC));
    await writeFile(broken, '{"inputs": {');
    expect(await loadFeatureSpec(good)).toEqual(spec());
    await expect(loadFeatureSpec(broken)).rejects.toMatchObject({
      code: 'SPEC_INVALID',
      message: expect.stringContaining(`feature spec '${broken}' is not valid JSON: `),
    });
    await expect(loadFeatureSpec(join(dir, 'none.json'))).rejects.toMatchObject({
      code: 'USAGE',
      message: `cannot read the feature spec '${join(dir, 'none.json')}' (ENOENT)`,
    });
  });
});

describe('describeFeatureSpec', () => {
  it('lists each input’s features with their slots, and the decoded output', () => {
    const text = describeFeatureSpec(
      spec({ output: { kind: 'classes', labels: ['0-20 days', '20+ days'] } }),
    );
    expect(text.split('\n')).toEqual([
      'features    input x',
      "  [0]      interval  time since the key's previous event, in days (first event: 0), minmax [0, 100] -> [0, 1]",
      '  [1]      spend     values.amount, standard mean 40 std 10',
      '  [2..3]   channel   values.channel, one-hot "app", "store", unknown: rejected',
      'decoded     label, probabilities over "0-20 days", "20+ days"',
    ]);
  });
});
