// Prints vitest's JSON report as one closing line, "tests: N passed, N failed, N skipped", after
// the name and first lines of each failure: a CI log is often read from its tail only, and the
// reporter's own account of a failure may be thousands of lines above it.
import { appendFileSync, readFileSync } from 'node:fs';
import { relative } from 'node:path';

// CELLSTREAM_TEST_SUMMARY names a file that also gets what is printed here, under a heading
// (argv[3]): .ci/run collects every test run's summary there and prints it last.
const [path, heading] = process.argv.slice(2);
const lines = [];
const say = (text) => {
  console.log(text);
  lines.push(text);
};
const keep = () => {
  const file = process.env.CELLSTREAM_TEST_SUMMARY;
  if (file) appendFileSync(file, `== ${heading ?? 'tests'} (${process.version})\n${lines.join('\n')}\n`);
};

let r;
try {
  r = JSON.parse(readFileSync(path, 'utf8'));
} catch {
  say('tests: 0 passed, 1 failed (vitest wrote no report)');
  keep();
  process.exit(0);
}

const firstLines = (text, n = 6) =>
  String(text ?? '')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(0, n)
    .map((line) => `      ${line}`)
    .join('\n');

for (const file of r.testResults ?? []) {
  const name = relative(process.cwd(), file.name ?? '');
  const failed = (file.assertionResults ?? []).filter((t) => t.status === 'failed');
  for (const t of failed) {
    const ms = t.duration === undefined ? '' : ` (after ${Math.round(t.duration)} ms)`;
    say(`FAILED ${name} > ${t.fullName ?? t.title}${ms}`);
    const messages = (t.failureMessages ?? []).join('\n');
    // vitest's JSON report keeps a timeout's error as this placeholder, without its message.
    if (messages.startsWith('Error: STACK_TRACE_ERROR'))
      say('      probably a test timeout (the report keeps no message; see the log above)');
    else say(firstLines(messages));
  }
  // A file that failed with no failed test failed outside them: in a hook, at import, or on an
  // error the test left unhandled.
  if (file.status === 'failed' && failed.length === 0) {
    say(`FAILED ${name} (outside its tests)`);
    say(firstLines(file.message));
  }
}
if (r.success === false && (r.numFailedTests ?? 0) === 0 && (r.numFailedTestSuites ?? 0) === 0) {
  say('FAILED: vitest reported errors outside every test (an unhandled error or rejection; see above)');
}

const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
say(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
keep();
