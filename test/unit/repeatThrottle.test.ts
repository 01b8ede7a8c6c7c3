import { describe, expect, it } from 'vitest';
import { RepeatThrottle } from '../../src/pipelines/repeatThrottle.js';

describe('RepeatThrottle', () => {
  it('tells the first at once, then at most once per interval with the count since the last told', () => {
    let now = 0;
    const told: Array<[string, number]> = [];
    const t = new RepeatThrottle<string>(
      (v, n) => told.push([v, n]),
      1000,
      () => now,
    );
    t.report('a');
    expect(told).toEqual([['a', 1]]);
    for (let i = 0; i < 5; i++) {
      now += 100;
      t.report(`b${i}`);
    }
    expect(told).toHaveLength(1);
    now = 1000;
    t.report('c');
    // The latest value, with the 5 held back and this one.
    expect(told).toEqual([
      ['a', 1],
      ['c', 6],
    ]);
    now = 5000;
    t.report('d');
    expect(told[2]).toEqual(['d', 1]);
  });
});
