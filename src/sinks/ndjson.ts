import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

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
