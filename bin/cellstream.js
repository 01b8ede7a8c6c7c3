#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled dist/ that `npm ci` builds (the `prepare` script).
// Loading it takes a while; a long-running command catches SIGINT/SIGTERM before that, so a
// signal during start-up stops it cleanly instead of killing it.
import { LONG_RUNNING_COMMANDS, shutdownSignal } from '../dist/commands/shutdownSignals.js';
import { dropKafkajsNegativeTimerWarning } from '../dist/kafka/nodeWarnings.js';

// `--help` (or `-h`) before a `--` only prints and exits: nothing is started, so no lifecycle.
const options = process.argv.slice(3);
const end = options.indexOf('--');
const asksHelp = (end === -1 ? options : options.slice(0, end)).some((a) => a === '--help' || a === '-h');
const longRunning = LONG_RUNNING_COMMANDS.includes(process.argv[2]) && !asksHelp;

if (longRunning) shutdownSignal();
dropKafkajsNegativeTimerWarning();
// `cellstream kafka` reports its lifecycle as JSON lines on stderr; this first one says that
// signals are now caught, before the CLI and the model load.
if (longRunning && process.argv[2] === 'kafka')
  process.stderr.write(`${JSON.stringify({ event: 'starting', pid: process.pid })}\n`);
const { main } = await import('../dist/cli.js');

// Once a long-running command has shut down (state durable, offsets committed, sockets closed),
// nothing should keep the process alive; if a client library left a handle open, exit anyway
// after this grace instead of hanging until the supervisor's SIGKILL, and say what was open.
const EXIT_GRACE_MS = 5000;

main(process.argv).then(
  (code) => {
    process.exitCode = code;
    if (longRunning) {
      setTimeout(() => {
        const open = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
        process.stderr.write(
          `${JSON.stringify({
            event: 'exit',
            level: 'warn',
            message: `still running ${EXIT_GRACE_MS} ms after shutting down; exiting (open: ${open.join(', ')})`,
          })}\n`,
        );
        process.exit();
      }, EXIT_GRACE_MS).unref();
    }
  },
  (err) => {
    process.stderr.write(`cellstream: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
