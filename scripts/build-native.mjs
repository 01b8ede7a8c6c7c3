#!/usr/bin/env node
// Builds native/kernel.c into the Node-API addon build/native/cellstream-native.node, with the
// system's C compiler (`cc`, or $CC) and the Node-API headers of the Node that runs this script
// (<prefix>/include/node, next to its executable): no node-gyp, nothing downloaded. `npm run
// build` runs it. Without a compiler or headers, or when the compile fails, it prints one line and
// exits 0: the native kernel is then unavailable and selectKernel() falls back to wasm.
//
// `--out DIR` builds into DIR instead (the tests build a fresh copy there); `--strict` exits 1
// on failure instead of 0; `--if-stale` does nothing when the addon is newer than its sources
// (the package's `install` script builds it, so `npm ci`'s build that follows need not again).
// It is the package's `install` script too: without --strict it never fails an install.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    out: { type: 'string' },
    strict: { type: 'boolean', default: false },
    'if-stale': { type: 'boolean', default: false },
  },
});
const outDir = args.out ?? join(root, 'build', 'native');
const target = join(outDir, 'cellstream-native.node');
const headers = join(dirname(dirname(process.execPath)), 'include', 'node');
const cc = process.env.CC || 'cc';

function skip(why) {
  console.error(`cellstream: native kernel not built (${why}); the wasm kernel will be used`);
  process.exit(args.strict ? 1 : 0);
}

const mtime = (path) => (existsSync(path) ? statSync(path).mtimeMs : 0);
const sources = [join(root, 'native', 'kernel.c'), fileURLToPath(import.meta.url)];
if (args['if-stale'] && mtime(target) > Math.max(...sources.map(mtime))) process.exit(0);

if (!existsSync(join(headers, 'node_api.h'))) skip(`no Node-API headers at ${headers}`);
if (!existsSync(sources[0])) skip(`no source at ${sources[0]}`);

// -ffp-contract=off: only the explicit FMAs of the kernel, so no call site fuses differently
// (the bit-for-bit batch independence depends on it). No -ffast-math, for the same reason.
const flags = [
  '-std=c11',
  '-O3',
  '-shared',
  '-fPIC',
  '-fvisibility=hidden',
  '-ffp-contract=off',
  '-Wall',
  '-Wno-unused-function',
  `-I${headers}`,
  join(root, 'native', 'kernel.c'),
  '-lm',
];
// On macOS the napi_* symbols are resolved from the node executable when the addon loads.
if (process.platform === 'darwin') flags.push('-undefined', 'dynamic_lookup');

const tmp = `${target}.${process.pid}.tmp`;
try {
  mkdirSync(outDir, { recursive: true });
  execFileSync(cc, [...flags, '-o', tmp], { stdio: ['ignore', 'ignore', 'pipe'] });
} catch (err) {
  rmSync(tmp, { force: true });
  const detail =
    err.syscall === 'mkdir'
      ? `cannot create ${outDir}: ${err.code}`
      : err.code === 'ENOENT'
        ? `no C compiler: '${cc}' not found; install gcc`
        : `${cc} failed: ${
            String(err.stderr ?? err.message)
              .trim()
              .split('\n')[0]
          }`;
  skip(detail);
}
// A rename, so a process that has the previous build loaded keeps its (unlinked) file.
try {
  renameSync(tmp, target);
} catch (err) {
  rmSync(tmp, { force: true });
  skip(`cannot write ${target}: ${err.code ?? err.message}`);
}
