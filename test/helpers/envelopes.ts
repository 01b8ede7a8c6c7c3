import type { Envelope } from '../../src/engine/types.js';
import type { Event } from '../../src/events/types.js';

export const FILE = '/data/events.ndjson';

/** An already-decoded event at line `line` of FILE. */
export function at(line: number, event: Event): Envelope {
  return { event, position: { kind: 'line', file: FILE, line } };
}

/** Raw text at line `line` of FILE. */
export function rawAt(line: number, raw: string): Envelope {
  return { raw, position: { kind: 'line', file: FILE, line } };
}

/** A deterministic stream of `n` events over `keys` keys, lines 1..n, features in [-1, 1). */
export function interleaved(n: number, keys: number, seed = 1): Envelope[] {
  let s = seed;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 1073741824 - 1;
  };
  return Array.from({ length: n }, (_, i) => {
    // Uneven key frequencies, so lanes have different lengths within a batch.
    const key = `k${Math.floor(((next() + 1) / 2) ** 2 * keys)}`;
    return at(i + 1, { key, ts: 1000 + i, features: [next(), next(), next()] });
  });
}
