import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Builds dist/ when it is missing or older than any source file, so the real bin and the child
 * processes the tests start run the current code: scripts/build-if-needed.mjs, as `npm start`
 * runs it (the full `npm run build`, dashboard assets included).
 */
export function ensureBuilt(): void {
  execFileSync('node', [join(ROOT, 'scripts', 'build-if-needed.mjs')], { cwd: ROOT, stdio: 'inherit' });
}
