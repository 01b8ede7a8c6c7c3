import { describe, expect, it } from 'vitest';
import type { EventError } from '../../src/errors.js';
import type { Event } from '../../src/events/types.js';
import { encodeInputs } from '../../src/features/encodeInputs.js';
import { tinyLstm, twoInputModel } from '../helpers/models.js';

function failure(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    return { code: (err as EventError).code, message: (err as EventError).message };
  }
  throw new Error('expected a failure');
}

const base = { key: 'k', ts: 0 };

describe('encodeInputs', () => {
  it('encodes features of a single-input model as float32', () => {
    const [x] = encodeInputs(tinyLstm(), { ...base, features: [1, 0.1, -2] });
    expect(x).toEqual(Float32Array.from([1, 0.1, -2]));
  });

  it('says how many values the model takes when features have the wrong size', () => {
    expect(failure(() => encodeInputs(tinyLstm(), { ...base, features: [1, 2] }))).toEqual({
      code: 'EVENT_WRONG_SIZE',
      message: 'features has 2 values, the model takes 3',
    });
  });

  it('takes inputs by name, in the model order, for a multi-input model', () => {
    const out = encodeInputs(twoInputModel(), { ...base, inputs: { b: [3], a: [1, 2] } });
    expect(out).toEqual([Float32Array.from([1, 2]), Float32Array.from([3])]);
  });

  it.each<[string, Event, string, string]>([
    [
      'features for two inputs',
      { ...base, features: [1, 2, 3] },
      'EVENT_INVALID',
      'invalid event: the model has 2 inputs (a, b); send inputs by name, not features',
    ],
    [
      'a missing input',
      { ...base, inputs: { a: [1, 2] } },
      'EVENT_INVALID',
      'invalid event: inputs.b is missing (the model takes a, b)',
    ],
    [
      'an unknown input',
      { ...base, inputs: { a: [1, 2], b: [1], c: [1] } },
      'EVENT_INVALID',
      'invalid event: inputs.c is not an input of the model (it takes a, b)',
    ],
    [
      'a wrong-size input',
      { ...base, inputs: { a: [1, 2], b: [1, 2] } },
      'EVENT_WRONG_SIZE',
      'inputs.b has 2 values, the model takes 1',
    ],
  ])('rejects %s', (_, event, code, message) => {
    expect(failure(() => encodeInputs(twoInputModel(), event))).toEqual({ code, message });
  });

  it('rejects values when the model has no feature spec', () => {
    expect(failure(() => encodeInputs(tinyLstm(), { ...base, values: { a: 1 } }))).toEqual({
      code: 'EVENT_INVALID',
      message:
        'invalid event: values needs a feature spec and the model has no feature spec; send features (x: 3 values)',
    });
  });

  it('hands values to the feature spec encoder when there is one', () => {
    const out = encodeInputs(tinyLstm(), { ...base, values: { a: 1 } }, (v) => [
      Float32Array.from([Number(v['a']), 0, 0]),
    ]);
    expect(out).toEqual([Float32Array.from([1, 0, 0])]);
  });

  it('rejects values float32 cannot hold, which would poison the state', () => {
    expect(failure(() => encodeInputs(tinyLstm(), { ...base, features: [1, 1e39, 0] }))).toEqual({
      code: 'EVENT_INVALID',
      message: 'invalid event: features[1] is 1e+39, outside the float32 range',
    });
  });
});
