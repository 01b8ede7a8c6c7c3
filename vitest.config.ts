import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tests that start processes, brokers' groups and restarts took up to 3× their quiet time on a
    // loaded 2-core CI machine (two files at a time); 60 s timed two of them out there. A test that
    // hangs still fails, after 2 minutes.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two files at a time, even on 2 cores (vitest would run one there): most of the Kafka and
    // crash tests' time is waiting on session timeouts, restarts and catch-up, so the suite took
    // 469 s this way against 858 s one file at a time. Every test keeps to topics, groups, ports and
    // directories of its own, so files share nothing but the broker and the registry.
    maxWorkers: 2,
  },
});
