#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled dist/ that `npm ci` builds (the `prepare` script).
// `cellstream kafka` takes SIGTERM/SIGINT before the (slow) CLI modules load, so a signal in its
// first moments shuts it down cleanly instead of killing it.
if (process.argv[2] === 'kafka') {
  const { shutdownSignal } = await import('../dist/commands/shutdownSignals.js');
  shutdownSignal();
  process.stderr.write(`${JSON.stringify({ event: 'starting', pid: process.pid })}\n`);
}
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
