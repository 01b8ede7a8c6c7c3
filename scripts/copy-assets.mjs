// tsc compiles only TypeScript; the dashboard's browser files ship as they are, next to the
// compiled server that serves them (dist/server/dashboard/).
import { cpSync, rmSync } from 'node:fs';

rmSync('dist/server/dashboard', { recursive: true, force: true });
cpSync('src/server/dashboard', 'dist/server/dashboard', { recursive: true });
