import { describe, expect, it } from 'vitest';
import { loadKerasModel } from '../../src/formats/keras/index.js';
import { createState, type Model, step } from '../../src/model/index.js';
import { listFixtures, maxAbsError } from './harness.js';

interface Event {
  key: string;
  features?: number[];
  inputs?: Record<string, number[]>;
  reset?: boolean;
}

/** One event's input vectors in the model's input order. */
function vectors(model: Model, e: Event): number[][] {
  if (e.inputs) return model.inputs.map((i) => e.inputs![i.name]);
  return [e.features!];
}

/** Streams the fixture's events one step at a time, each key on its own state, as the engine does. */
function stream(model: Model, events: readonly Event[]): number[][] {
  const states = new Map<string, Float32Array>();
  return events.map((e) => {
    const state = e.reset || !states.has(e.key) ? createState(model) : states.get(e.key)!;
    const r = step(model, state, vectors(model, e));
    states.set(e.key, r.state);
    return Array.from(r.output);
  });
}

const fixtures = listFixtures('keras');

describe('Keras golden fixtures: streaming equals Keras over whole sequences', () => {
  it('has fixtures', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(7);
  });

  it.each(fixtures.map((f) => [f.meta.name, f] as const))('%s', async (_, fixture) => {
    const model = await loadKerasModel(fixture.modelPath);
    const outputs = stream(model, fixture.events as unknown as Event[]);
    fixture.expected.forEach((e, i) => {
      const ev = fixture.events[i] as unknown as Event;
      expect(e.key).toBe(ev.key);
    });
    const err = maxAbsError(
      outputs,
      fixture.expected.map((e) => e.output),
    );
    console.log(`${fixture.meta.name}: max abs error ${err.toExponential(2)} (${fixture.meta.producer})`);
    expect(outputs[0]).toHaveLength(fixture.meta.outputSize);
    expect(err).toBeLessThanOrEqual(fixture.meta.tolerance);
  });
});
