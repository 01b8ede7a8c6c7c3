#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled dist/ that `npm ci` builds (the `prepare` script).
import { main } from '../dist/cli.js';
import { dropKafkajsNegativeTimerWarning } from '../dist/kafka/nodeWarnings.js';

dropKafkajsNegativeTimerWarning();

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`cellstream: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
