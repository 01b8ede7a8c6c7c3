import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createState, type Model, step } from '../../src/model/index.js';

/** What a fixture folder's fixture.json says. Every fixture is made by a committed script beside it. */
export interface FixtureMeta {
  readonly name: string;
  readonly format: string;
  readonly model: string;
  readonly producer: string;
  readonly oracle: string;
  readonly tolerance: number;
  readonly outputSize: number;
}

export interface Fixture {
  readonly dir: string;
  readonly meta: FixtureMeta;
  readonly modelPath: string;
  readonly eventsPath: string;
  /** Raw event lines, in stream order. */
  readonly events: readonly Record<string, unknown>[];
  /** The framework's own outputs, one per event, in stream order. */
  readonly expected: readonly { key: string; ts: number; output: number[] }[];
}

export const FIXTURES_DIR = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

function ndjson<T>(path: string): T[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
}

/** Every committed golden fixture, sorted by name; optionally only those of one format. */
export function listFixtures(format?: string): Fixture[] {
  return readdirSync(FIXTURES_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => join(FIXTURES_DIR, d.name))
    .map((dir) => {
      const meta = JSON.parse(readFileSync(join(dir, 'fixture.json'), 'utf8')) as FixtureMeta;
      return {
        dir,
        meta,
        modelPath: join(dir, meta.model),
        eventsPath: join(dir, 'events.ndjson'),
        events: ndjson<Record<string, unknown>>(join(dir, 'events.ndjson')),
        expected: ndjson<{ key: string; ts: number; output: number[] }>(join(dir, 'expected.ndjson')),
      };
    })
    .filter((f) => format === undefined || f.meta.format === format)
    .sort((a, b) => a.meta.name.localeCompare(b.meta.name));
}

/** Largest |a − e| over all outputs; throws if the shapes differ, since that is a bug, not an error size. */
export function maxAbsError(
  actual: readonly (readonly number[])[],
  expected: readonly (readonly number[])[],
): number {
  if (actual.length !== expected.length) {
    throw new Error(`got ${actual.length} outputs, the framework gave ${expected.length}`);
  }
  let max = 0;
  actual.forEach((a, i) => {
    const e = expected[i];
    if (a.length !== e.length)
      throw new Error(`output ${i} has ${a.length} values, the framework gave ${e.length}`);
    for (let j = 0; j < a.length; j++) {
      const d = Math.abs(a[j] - e[j]);
      if (!(d <= max)) max = d; // NaN propagates as a failure
    }
  });
  return max;
}

interface FixtureEvent {
  key: string;
  features?: number[];
  inputs?: Record<string, number[]>;
  reset?: boolean;
}

/**
 * The fixture's events applied one step at a time through the pure core, each key on its own
 * state and keys interleaved as in the file; a `reset` event starts its key from zero.
 */
export function streamThroughCore(model: Model, fixture: Fixture): number[][] {
  const states = new Map<string, Float32Array>();
  return (fixture.events as unknown as FixtureEvent[]).map((e) => {
    const state = e.reset || !states.has(e.key) ? createState(model) : states.get(e.key)!;
    const inputs = e.inputs ? model.inputs.map((i) => e.inputs![i.name]) : [e.features!];
    const r = step(model, state, inputs);
    states.set(e.key, r.state);
    return Array.from(r.output);
  });
}
