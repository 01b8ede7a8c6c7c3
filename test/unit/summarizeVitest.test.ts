import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/fixtures.js';

const run = promisify(execFile);
// Without .ci/run's summary file: these fabricated failures must not reach the real CI summary.
const { CELLSTREAM_TEST_SUMMARY: _ciSummary, ...envWithoutSummary } = process.env;

// A CI log is read from its tail: the closing summary must name each failure, including one
// outside every test, and hand the same lines to the file .ci/run prints last.
describe('scripts/summarize-vitest.mjs', () => {
  it('names failed tests, files that failed outside their tests, and unhandled errors', async () => {
    const dir = await tempDir('summary');
    const report = join(dir, 'report.json');
    const kept = join(dir, 'summary.txt');
    await writeFile(
      report,
      JSON.stringify({
        success: false,
        numPassedTests: 3,
        numFailedTests: 1,
        numFailedTestSuites: 2,
        numPendingTests: 1,
        testResults: [
          {
            name: join(process.cwd(), 'test/a.test.ts'),
            status: 'failed',
            assertionResults: [
              { status: 'passed', fullName: 'fine' },
              {
                status: 'failed',
                fullName: 'group > times out',
                duration: 60_012.4,
                failureMessages: ['Error: STACK_TRACE_ERROR\n    at task (chunk.js:1:1)'],
              },
              {
                status: 'failed',
                fullName: 'group > breaks',
                failureMessages: ['AssertionError: expected 1 to be 2\n    at x'],
              },
            ],
          },
          {
            name: join(process.cwd(), 'test/b.test.ts'),
            status: 'failed',
            message: 'Error: Hook timed out in 10000ms',
            assertionResults: [],
          },
        ],
      }),
    );
    const { stdout } = await run(process.execPath, ['scripts/summarize-vitest.mjs', report, 'npm test'], {
      env: { ...envWithoutSummary, CELLSTREAM_TEST_SUMMARY: kept },
    });
    expect(stdout).toContain('FAILED test/a.test.ts > group > breaks');
    expect(stdout).toContain(
      'FAILED test/a.test.ts > group > times out (after 60012 ms)\n      probably a test timeout',
    );
    expect(stdout).toContain('AssertionError: expected 1 to be 2');
    expect(stdout).not.toContain('fine');
    expect(stdout).toContain('FAILED test/b.test.ts (outside its tests)');
    expect(stdout).toContain('Hook timed out');
    expect(stdout.trimEnd().split('\n').at(-1)).toBe('tests: 3 passed, 1 failed, 1 skipped');
    expect(await readFile(kept, 'utf8')).toBe(`== npm test (${process.version})\n${stdout}`);

    await writeFile(
      report,
      JSON.stringify({ success: false, numPassedTests: 5, numFailedTests: 0, testResults: [] }),
    );
    const unhandled = await run(process.execPath, ['scripts/summarize-vitest.mjs', report], {
      env: envWithoutSummary,
    });
    expect(unhandled.stdout).toContain('errors outside every test');
    expect(unhandled.stdout).toContain('tests: 5 passed, 0 failed, 0 skipped');

    const missing = await run(process.execPath, ['scripts/summarize-vitest.mjs', join(dir, 'none.json')], {
      env: envWithoutSummary,
    });
    expect(missing.stdout).toContain('vitest wrote no report');
  });
});
