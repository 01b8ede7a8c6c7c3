import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { dropTornLastLine } from './tornLine.js';

/**
 * Writes values to a stream as NDJSON, one JSON line each (predictions, dead letters).
 * A write error of the stream is thrown by the next `write` and by `close`.
 */
export class NdjsonSink<T = unknown> {
  private error: Error | undefined;

  /** `end`: whether `close` ends the stream; false for shared streams such as stdout. */
  constructor(
    private readonly out: Writable,
    private readonly options: { readonly end: boolean } = { end: true },
  ) {
    out.on('error', (err) => {
      this.error ??= err;
    });
  }

  write(value: T): void {
    if (this.error) throw this.error;
    this.out.write(`${JSON.stringify(value)}\n`);
  }

  /**
   * Resolves once everything written so far has been handed to the operating system (for a
   * file: it survives the process being killed), rejecting on a write error.
   */
  flushed(): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.out.write('', (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Resolves once everything written is flushed (and the stream ended, if it is ours). */
  async close(): Promise<void> {
    if (this.error) throw this.error;
    if (this.options.end) {
      this.out.end();
      await finished(this.out);
    } else if (this.out.writableNeedDrain) {
      await once(this.out, 'drain');
    }
  }
}

/** An `NdjsonSink` writing to a new (truncated) file at `path`. */
export function ndjsonFileSink<T>(path: string): NdjsonSink<T> {
  return new NdjsonSink<T>(createWriteStream(path), { end: true });
}

/**
 * An `NdjsonSink` appending to the file at `path` (created if missing), for output that must
 * outlive a crash and a resume. A last line cut short by a crash mid-write is cut off first: it
 * was never acknowledged, so its event is applied (and its line written) again.
 */
export async function ndjsonAppendSink<T>(path: string): Promise<NdjsonSink<T>> {
  await dropTornLastLine(path);
  return new NdjsonSink<T>(createWriteStream(path, { flags: 'a' }), { end: true });
}
