// Prints, for every golden fixture, the largest difference between `cellstream replay` (the very
// engine `serve` runs, one step per event, keys interleaved) and the framework's own
// whole-sequence outputs. Usage: npm run golden:report  (after npm run build)
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const fixturesDir = join(root, 'test/golden/fixtures');
const ndjson = (p) =>
  readFileSync(p, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));

const rows = [];
let failures = 0;
for (const name of readdirSync(fixturesDir).sort()) {
  const dir = join(fixturesDir, name);
  const meta = JSON.parse(readFileSync(join(dir, 'fixture.json'), 'utf8'));
  const out = execFileSync(
    process.execPath,
    [
      join(root, 'bin/cellstream.js'),
      'replay',
      '--model',
      join(dir, meta.model),
      '--input',
      join(dir, 'events.ndjson'),
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 28 },
  );
  const got = out
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
  const want = ndjson(join(dir, 'expected.ndjson'));
  let err = got.length === want.length ? 0 : Number.POSITIVE_INFINITY;
  for (let i = 0; i < Math.min(got.length, want.length); i++) {
    for (let j = 0; j < want[i].output.length; j++) {
      const d = Math.abs(got[i].output[j] - want[i].output[j]);
      if (!(d <= err)) err = d;
    }
  }
  const ok = err <= meta.tolerance;
  if (!ok) failures++;
  const keys = new Set(want.map((e) => e.key)).size;
  rows.push([
    name,
    meta.format,
    meta.oracle,
    String(want.length),
    String(keys),
    err.toExponential(2),
    ok ? 'ok' : 'FAIL',
  ]);
}

const head = ['fixture', 'format', 'oracle', 'events', 'keys', 'max abs err', '≤ tol'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
console.log(line(head));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const r of rows) console.log(line(r));
console.log(`\n${rows.length} fixtures, ${failures} over tolerance`);
process.exitCode = failures ? 1 : 0;
