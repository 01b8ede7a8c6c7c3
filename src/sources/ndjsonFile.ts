import { createReadStream } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Observable } from 'rxjs';
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
    const file = options.sourceName ?? absolute;
    const input = createReadStream(absolute, { encoding: 'utf8' });
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
    return () => {
      lines.close();
      input.destroy();
    };
  });
}
