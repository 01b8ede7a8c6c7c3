import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Observable, type Subscriber } from 'rxjs';
import type { Envelope } from '../engine/types.js';

export interface NdjsonFileOptions {
  /**
   * The name positions give the file, in place of its absolute path. Stored state remembers
   * positions by this name, so a file that is moved keeps its identity only if it is named.
   */
  readonly sourceName?: string | undefined;
}

/**
 * The lines of an NDJSON file as raw envelopes, read as a stream on subscription. Positions name
 * the file by its absolute path (or `sourceName`) and count lines from 1, blank lines included;
 * blank lines carry no event and are skipped. Unsubscribing stops the read.
 */
export function ndjsonFile(path: string, options: NdjsonFileOptions = {}): Observable<Envelope> {
  return new Observable<Envelope>((subscriber) => {
    const absolute = resolve(path);
    const input = createReadStream(absolute, { encoding: 'utf8' });
    const stop = readLines(input, options.sourceName ?? absolute, subscriber);
    return () => {
      stop();
      input.destroy();
    };
  });
}

/**
 * The lines of an already open stream (standard input, say) as raw envelopes, positioned as
 * lines of `name`. Unsubscribing stops reading but leaves the stream open: its owner closes it.
 */
export function ndjsonStream(input: Readable, name: string): Observable<Envelope> {
  return new Observable<Envelope>((subscriber) => readLines(input, name, subscriber));
}

/** Emits each non-blank line of `input`; returns the function that stops reading. */
function readLines(input: Readable, file: string, subscriber: Subscriber<Envelope>): () => void {
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  // readline re-emits its input's errors (a missing file, say) as its own.
  lines.on('error', (err) => subscriber.error(err));
  lines.on('line', (text) => {
    line++;
    // Editors on Windows may start a UTF-8 file with a byte-order mark.
    const raw = line === 1 ? text.replace(/^\uFEFF/, '') : text;
    if (raw.trim() === '') return;
    subscriber.next({ raw, position: { kind: 'line', file, line } });
  });
  lines.on('close', () => {
    if (!input.errored) subscriber.complete();
  });
  return () => lines.close();
}
