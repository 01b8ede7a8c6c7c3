import type { Parameters } from 'fast-check';

/**
 * Settings for property-based tests: bounded and seeded in CI so a run is repeatable, larger
 * on demand (`npm run fuzz`, or `CELLSTREAM_FUZZ_RUNS=N npx vitest run test/fuzz`). A failure
 * prints its seed and path; set `CELLSTREAM_FUZZ_SEED` to replay it.
 */
export function fuzzParams<T>(defaultRuns: number, extra: Parameters<T> = {}): Parameters<T> {
  const runs = Number(process.env.CELLSTREAM_FUZZ_RUNS ?? defaultRuns);
  const seedText = process.env.CELLSTREAM_FUZZ_SEED;
  const seed = seedText === undefined ? 0x5eed : Number(seedText);
  return { numRuns: runs, seed, ...extra };
}

/**
 * A test timeout that grows with the number of runs, so `npm run fuzz` with a large
 * `CELLSTREAM_FUZZ_RUNS` is not cut off by the suite's default timeout: a minute plus
 * `msPerRun` per run, generous for a loaded machine.
 */
export function fuzzTimeout(defaultRuns: number, msPerRun: number): number {
  return 60_000 + msPerRun * Number(process.env.CELLSTREAM_FUZZ_RUNS ?? defaultRuns);
}
