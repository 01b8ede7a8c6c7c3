#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled dist/ that `npm ci` builds (the `prepare` script).
// Loading it takes a while; a long-running command catches SIGINT/SIGTERM before that, so a
// signal during start-up stops it cleanly instead of killing it.
import { LONG_RUNNING_COMMANDS, shutdownSignal } from '../dist/commands/shutdownSignals.js';

if (LONG_RUNNING_COMMANDS.includes(process.argv[2])) shutdownSignal();
const { main } = await import('../dist/cli.js');

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`cellstream: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
