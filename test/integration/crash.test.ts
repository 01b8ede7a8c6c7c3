import { beforeAll, describe, expect, it } from 'vitest';
import { runCrashTest } from '../../scripts/crash-test.mjs';
import { ensureBuilt } from '../helpers/build.js';

beforeAll(() => {
  ensureBuilt();
});

describe('replay --state under kill -9', () => {
  it('loses nothing, steps nothing twice and ends in the uninterrupted state, over 10 SIGKILLs', async () => {
    const log: string[] = [];
    const figures = await runCrashTest({
      events: 20_000,
      keys: 300,
      kills: 10,
      seed: 4,
      log: (l) => log.push(l),
    });
    const context = `${JSON.stringify(figures)}\n${log.join('\n')}`;
    expect(figures.kills, context).toBeGreaterThanOrEqual(10);
    expect(figures.lost, context).toBe(0);
    expect(figures.doubleStepped, context).toBe(0);
    expect(figures.referenceSeqGaps, context).toBe(0);
    expect(figures.finalStateEqual, context).toBe(true);
    expect(figures.outputLines, context).toBeGreaterThanOrEqual(20_000);
    // Eleven CLI processes one after another: ~20 s quiet, 60 s and more on a loaded machine.
  }, 240_000);
});
