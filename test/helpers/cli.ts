// Running the CLI in tests: the real bin as a child process, `main` in this process, and the
// captured output streams and newline-delimited JSON they produce.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { main } from '../../src/cli.js';
import { ROOT } from './build.js';

/** How a CLI run ended and what it printed. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A stream to pass as stdout or stderr, and the text written to it so far. */
export function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (c) => chunks.push(String(c)));
  return { stream, text: () => chunks.join('') };
}

/**
 * Runs the real bin (bin/cellstream.js, so dist/: call ensureBuilt first) as a child process in
 * the repository root, with CELLSTREAM_DEBUG unset unless `env` sets it.
 */
export function runBin(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, 'bin', 'cellstream.js'), ...args],
      { cwd: ROOT, env: { ...process.env, CELLSTREAM_DEBUG: '', ...env } },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
      },
    );
  });
}

/** Runs the CLI's `main` in this process with captured stdout and stderr. */
export async function runMain(args: string[], stdin?: Readable): Promise<Run> {
  const stdout = capture();
  const stderr = capture();
  const code = await main(['node', 'cellstream', ...args], {
    stdout: stdout.stream,
    stderr: stderr.stream,
    ...(stdin ? { stdin } : {}),
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

/** The values of newline-delimited JSON text, one a line (a final newline allowed). */
export function parseNdjson(text: string) {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
}

/** The values of a newline-delimited JSON file. */
export async function readNdjson(path: string) {
  return parseNdjson(await readFile(path, 'utf8'));
}
