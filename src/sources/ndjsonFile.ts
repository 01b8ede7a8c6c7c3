import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Observable, type Subscriber } from 'rxjs';
import type { Envelope, Rejected } from '../engine/types.js';
import { EventTooDeepError } from '../errors.js';
import { DEFAULT_MAX_JSON_DEPTH, jsonDepth } from '../events/jsonDepth.js';

export interface NdjsonFileOptions {
  /**
   * The name positions give the file, in place of its absolute path. Stored state remembers
   * positions by this name, so a file that is moved keeps its identity only if it is named.
   */
  readonly sourceName?: string | undefined;
  /** Deepest nesting of arrays and objects a line may have; deeper lines are rejected unparsed. */
  readonly maxJsonDepth?: number | undefined;
}

export interface NdjsonStreamOptions {
  /** Deepest nesting of arrays and objects a line may have; deeper lines are rejected unparsed. */
  readonly maxJsonDepth?: number | undefined;
}

/**
 * The lines of an NDJSON file as raw envelopes, read as a stream on subscription. Positions name
 * the file by its absolute path (or `sourceName`) and count lines from 1, blank lines included;
 * blank lines carry no event and are skipped. A line nested deeper than `maxJsonDepth` comes out
 * as its rejection (`EVENT_TOO_DEEP`), in its place, and is never parsed. Unsubscribing stops the
 * read.
 */
export function ndjsonFile(path: string, options: NdjsonFileOptions = {}): Observable<Envelope | Rejected> {
  const maxDepth = options.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH;
  return new Observable<Envelope | Rejected>((subscriber) => {
    const absolute = resolve(path);
    const input = createReadStream(absolute, { encoding: 'utf8' });
    const stop = readLines(input, options.sourceName ?? absolute, maxDepth, subscriber);
    return () => {
      stop();
      input.destroy();
    };
  });
}

/**
 * The lines of an already open stream (standard input, say) as raw envelopes, positioned as
 * lines of `name`, over-nested lines rejected as in `ndjsonFile`. Unsubscribing stops reading but
 * leaves the stream open: its owner closes it.
 */
export function ndjsonStream(
  input: Readable,
  name: string,
  options: NdjsonStreamOptions = {},
): Observable<Envelope | Rejected> {
  const maxDepth = options.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH;
  return new Observable<Envelope | Rejected>((subscriber) => readLines(input, name, maxDepth, subscriber));
}

/**
 * The lines of an NDJSON file as raw envelopes, as `ndjsonFile` gives them, but pulled: the file
 * is read only as fast as the caller takes lines, so a large archive is never held in memory. A
 * file that cannot be read throws from the iteration.
 */
export async function* ndjsonLines(
  path: string,
  options: NdjsonFileOptions = {},
): AsyncGenerator<Envelope | Rejected, void, undefined> {
  const maxDepth = options.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH;
  const absolute = resolve(path);
  const input = createReadStream(absolute, { encoding: 'utf8' });
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  try {
    for await (const text of lines) {
      line++;
      const item = lineEnvelope(text, options.sourceName ?? absolute, line, maxDepth);
      if (item !== undefined) yield item;
    }
  } finally {
    lines.close();
    input.destroy();
  }
}

/** Line `line` of `file` as an envelope, its rejection when nested too deep, or nothing when blank. */
function lineEnvelope(
  text: string,
  file: string,
  line: number,
  maxDepth: number,
): Envelope | Rejected | undefined {
  // Editors on Windows may start a UTF-8 file with a byte-order mark.
  const raw = line === 1 ? text.replace(/^\uFEFF/, '') : text;
  if (raw.trim() === '') return undefined;
  const position = { kind: 'line', file, line } as const;
  if (jsonDepth(raw, maxDepth) > maxDepth) {
    const { code, message } = new EventTooDeepError(maxDepth);
    return { kind: 'rejected', code, reason: message, raw, position };
  }
  return { raw, position };
}

/** Emits each non-blank line of `input`; returns the function that stops reading. */
function readLines(
  input: Readable,
  file: string,
  maxDepth: number,
  subscriber: Subscriber<Envelope | Rejected>,
): () => void {
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  // readline re-emits its input's errors (a missing file, say) as its own.
  lines.on('error', (err) => subscriber.error(err));
  lines.on('line', (text) => {
    line++;
    const item = lineEnvelope(text, file, line, maxDepth);
    if (item !== undefined) subscriber.next(item);
  });
  lines.on('close', () => {
    if (!input.errored) subscriber.complete();
  });
  return () => lines.close();
}
