import { describe, expect, it } from 'vitest';
import { type InvalidEventError, MalformedJsonError } from '../../src/errors.js';
import { decodeEvent, validateEvent } from '../../src/events/decode.js';

function rejection(text: string): { code: string; message: string } {
  try {
    decodeEvent(text);
  } catch (err) {
    const e = err as InvalidEventError;
    return { code: e.code, message: e.message };
  }
  throw new Error(`expected ${text} to be rejected`);
}

describe('decodeEvent', () => {
  it('decodes a features event with id and reset', () => {
    expect(decodeEvent('{"key":"k","ts":5,"features":[1,2.5,-3],"id":"e1","reset":true}')).toEqual({
      key: 'k',
      ts: 5,
      features: [1, 2.5, -3],
      id: 'e1',
      reset: true,
    });
  });

  it('decodes values and inputs events, ignoring unknown fields and null optionals', () => {
    expect(decodeEvent('{"key":"k","ts":1,"values":{"a":1,"b":"x"},"extra":3,"id":null}')).toEqual({
      key: 'k',
      ts: 1,
      values: { a: 1, b: 'x' },
    });
    expect(decodeEvent('{"key":"k","ts":1,"inputs":{"a":[1],"b":[2,3]},"features":null}')).toEqual({
      key: 'k',
      ts: 1,
      inputs: { a: [1], b: [2, 3] },
    });
  });

  it.each([
    ['2024-11-27T10:00:00Z', Date.UTC(2024, 10, 27, 10)],
    ['2024-11-27T10:00:00.123Z', Date.UTC(2024, 10, 27, 10, 0, 0, 123)],
    ['2024-11-27T10:00:00.1239Z', Date.UTC(2024, 10, 27, 10, 0, 0, 123)],
    ['2024-11-27T12:30+02:30', Date.UTC(2024, 10, 27, 10)],
    ['2024-11-27T05:00:00-0500', Date.UTC(2024, 10, 27, 10)],
    ['2024-11-27', Date.UTC(2024, 10, 27)],
  ])('reads ts %s as ms', (ts, ms) => {
    expect(decodeEvent(JSON.stringify({ key: 'k', ts, features: [] })).ts).toBe(ms);
  });

  it('reports malformed JSON', () => {
    const r = rejection('{"key": "k",');
    expect(r.code).toBe('EVENT_MALFORMED_JSON');
    expect(r.message).toMatch(/^malformed JSON: /);
    expect(() => decodeEvent('')).toThrow(MalformedJsonError);
  });

  it.each([
    ['[1,2]', 'invalid event: expected a JSON object, got an array'],
    ['"k"', 'invalid event: expected a JSON object, got "k"'],
    ['null', 'invalid event: expected a JSON object, got null'],
    ['{"ts":1,"features":[1]}', 'invalid event: key is missing'],
    ['{"key":"","ts":1,"features":[1]}', 'invalid event: key must be a non-empty string, got ""'],
    ['{"key":7,"ts":1,"features":[1]}', 'invalid event: key must be a non-empty string, got number 7'],
    ['{"key":"k","features":[1]}', 'invalid event: ts is missing'],
    [
      '{"key":"k","ts":true,"features":[1]}',
      'invalid event: ts must be ms since the epoch or an ISO-8601 string, got boolean true',
    ],
    [
      '{"key":"k","ts":"yesterday","features":[1]}',
      'invalid event: ts "yesterday" is not an ISO-8601 date-time with a time zone (e.g. 2024-11-27T10:00:00Z)',
    ],
    [
      '{"key":"k","ts":"2024-11-27T10:00:00","features":[1]}',
      'invalid event: ts "2024-11-27T10:00:00" is not an ISO-8601 date-time with a time zone (e.g. 2024-11-27T10:00:00Z)',
    ],
    [
      '{"key":"k","ts":"2024-02-30T10:00:00Z","features":[1]}',
      'invalid event: ts "2024-02-30T10:00:00Z" is not an ISO-8601 date-time with a time zone (e.g. 2024-11-27T10:00:00Z)',
    ],
    ['{"key":"k","ts":1}', 'invalid event: an event needs one of features, values or inputs'],
    [
      '{"key":"k","ts":1,"features":[1],"values":{}}',
      'invalid event: give only one of features, values or inputs, not features and values',
    ],
    ['{"key":"k","ts":1,"features":"1,2"}', 'invalid event: features must be an array of numbers, got "1,2"'],
    ['{"key":"k","ts":1,"features":[1,"2"]}', 'invalid event: features[1] must be a finite number, got "2"'],
    [
      '{"key":"k","ts":1,"features":[1,null]}',
      'invalid event: features[1] must be a finite number, got null',
    ],
    ['{"key":"k","ts":1,"values":[1]}', 'invalid event: values must be an object, got an array'],
    ['{"key":"k","ts":1,"inputs":[[1]]}', 'invalid event: inputs must be an object of arrays, got an array'],
    [
      '{"key":"k","ts":1,"inputs":{"a":[1],"b":[true]}}',
      'invalid event: inputs.b[0] must be a finite number, got boolean true',
    ],
    [
      '{"key":"k","ts":1,"inputs":{"a":3}}',
      'invalid event: inputs.a must be an array of numbers, got number 3',
    ],
    [
      '{"key":"k","ts":1,"features":[1],"id":5}',
      'invalid event: id must be a non-empty string, got number 5',
    ],
    [
      '{"key":"k","ts":1,"features":[1],"reset":"yes"}',
      'invalid event: reset must be true or false, got "yes"',
    ],
  ])('rejects %s', (text, message) => {
    expect(rejection(text)).toEqual({ code: 'EVENT_INVALID', message });
  });

  it('rejects a non-finite ts given as a parsed value', () => {
    expect(() => validateEvent({ key: 'k', ts: Number.NaN, features: [1] })).toThrow(
      'invalid event: ts must be a finite number, got NaN',
    );
  });
});
