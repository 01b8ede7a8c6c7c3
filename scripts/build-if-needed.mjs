// Builds dist/ (npm run build) when it is missing or older than any file under src/ or native/, so
// `npm start` and the tests that run the real bin never serve stale code.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

function builtAt() {
  try {
    return Math.min(
      statSync(join(root, 'dist', 'cli.js')).mtimeMs,
      statSync(join(root, 'dist', 'server', 'dashboard', 'app.js')).mtimeMs,
    );
  } catch {
    return 0;
  }
}

// native/ too: the addon is built by the same `npm run build` (where a compiler exists).
if (builtAt() < Math.max(newest(join(root, 'src')), newest(join(root, 'native')))) {
  process.stderr.write('cellstream: building dist/ (npm run build)\n');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
}
