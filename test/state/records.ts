import { expect } from 'vitest';
import type { Position } from '../../src/events/types.js';
import type { StateRecord } from '../../src/state/types.js';

export const FINGERPRINT = 'a3f1c2e4b5d6978812345678909abcdefa3f1c2e4b5d6978812345678909abcd';

/** One position of every kind and encoding the codec distinguishes. */
export const EVERY_POSITION: readonly Position[] = [
  { kind: 'none' },
  { kind: 'offset', topic: 'events', partition: 3, offset: '0' },
  { kind: 'offset', topic: 'événements-ü', partition: 0, offset: '9223372036854775807' },
  { kind: 'offset', topic: 't', partition: 2147483647, offset: '-1' },
  // Not canonical int64 decimals: kept as strings, returned unchanged.
  { kind: 'offset', topic: 't', partition: 1, offset: '007' },
  { kind: 'offset', topic: 't', partition: 1, offset: '9223372036854775808' },
  { kind: 'offset', topic: '', partition: 1, offset: '' },
  { kind: 'line', file: '/data/events.ndjson', line: 1 },
  { kind: 'line', file: '', line: 4_294_967_296 },
];

/** A state vector whose values include the awkward float32 bit patterns. */
export function awkwardState(size: number, salt = 0): Float32Array {
  const s = new Float32Array(size);
  const specials = [0, -0, Number.NaN, Number.POSITIVE_INFINITY, -Number.MAX_VALUE, 1.4e-45, 0.1];
  for (let i = 0; i < size; i++) s[i] = i < specials.length ? specials[i] : Math.sin(i * 7.1 + salt) * 3;
  // A NaN with a payload other than the canonical one.
  if (size > specials.length) new Uint32Array(s.buffer)[specials.length] = 0x7fc0_1234;
  return s;
}

export function makeRecord(i: number, size = 8, over: Partial<StateRecord> = {}): StateRecord {
  const state = new Float32Array(size);
  for (let j = 0; j < size; j++) state[j] = Math.fround(i * 0.001 + j);
  return {
    seq: i + 1,
    ts: 1_732_700_000_000 + i,
    state,
    lastApplied: { kind: 'offset', topic: 'events', partition: i % 7, offset: String(i * 3) },
    fingerprint: FINGERPRINT,
    ...over,
  };
}

/** Bit-level equality of two float32 vectors, so NaN payloads and -0 count. */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

export function expectSameRecord(actual: StateRecord, expected: StateRecord): void {
  const { state: a, ...restA } = actual;
  const { state: b, ...restB } = expected;
  expect(restA).toStrictEqual(restB);
  expect(sameBits(a, b), 'state bits').toBe(true);
}
