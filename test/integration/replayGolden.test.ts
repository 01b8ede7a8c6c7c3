import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { listFixtures, maxAbsError } from '../golden/harness.js';

/** `cellstream replay` (in process) over a fixture's events; the predictions' outputs in order. */
async function replay(
  modelPath: string,
  eventsPath: string,
  batch: number,
): Promise<{ code: number; lines: string[] }> {
  const stdout = new PassThrough();
  const chunks: string[] = [];
  stdout.on('data', (c) => chunks.push(String(c)));
  const code = await main(
    ['node', 'cellstream', 'replay', '--model', modelPath, '--input', eventsPath, '--batch', String(batch)],
    { stdout, stderr: new PassThrough() },
  );
  return { code, lines: chunks.join('').trimEnd().split('\n') };
}

// The replay CLI is the serving engine; over every golden fixture it must match the framework.
describe.each(listFixtures())('replay of golden fixture $meta.name', (fixture) => {
  it.each([1, 5, 256])('matches the framework with --batch %i', async (batch) => {
    const { code, lines } = await replay(fixture.modelPath, fixture.eventsPath, batch);
    expect(code).toBe(0);
    const predictions = lines.map((l) => JSON.parse(l) as { key: string; ts: number; output: number[] });
    expect(predictions.map((p) => [p.key, p.ts])).toEqual(fixture.expected.map((e) => [e.key, e.ts]));
    const error = maxAbsError(
      predictions.map((p) => p.output),
      fixture.expected.map((e) => e.output),
    );
    expect(error).toBeLessThanOrEqual(fixture.meta.tolerance);
  });
});
