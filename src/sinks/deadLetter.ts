import type { Rejected } from '../engine/types.js';
import type { Position } from '../events/types.js';
import { type NdjsonSink, ndjsonAppendSink, ndjsonFileSink } from './ndjson.js';

/** One dead-letter line: where the event came from, why it was rejected, and its text as received. */
export interface DeadLetter extends DeadLetterPlace {
  readonly code: string;
  readonly reason: string;
  readonly raw: string;
}

/** A file's line, or a Kafka topic-partition and offset, or nothing for sources without positions. */
interface DeadLetterPlace {
  readonly line?: number;
  readonly topic?: string;
  readonly partition?: number;
  readonly offset?: string;
}

/** The dead-letter record of a rejection; a file's line number leads, for a reader's eye. */
export function deadLetter(rejected: Rejected): DeadLetter {
  return { ...place(rejected.position), code: rejected.code, reason: rejected.reason, raw: rejected.raw };
}

function place(position: Position): DeadLetterPlace {
  switch (position.kind) {
    case 'line':
      return { line: position.line };
    case 'offset':
      return { topic: position.topic, partition: position.partition, offset: position.offset };
    case 'none':
      return {};
  }
}

/** Writes rejections as NDJSON dead letters (`{"line":N,"code":…,"reason":…,"raw":…}`). */
export class DeadLetterSink {
  constructor(private readonly sink: NdjsonSink<DeadLetter>) {}

  write(rejected: Rejected): void {
    this.sink.write(deadLetter(rejected));
  }

  /** Resolves once everything written so far has been handed to the operating system. */
  flushed(): Promise<void> {
    return this.sink.flushed();
  }

  close(): Promise<void> {
    return this.sink.close();
  }
}

/** A `DeadLetterSink` writing to a new (truncated) file at `path`. */
export function deadLetterFile(path: string): DeadLetterSink {
  return new DeadLetterSink(ndjsonFileSink<DeadLetter>(path));
}

/** A `DeadLetterSink` appending to the file at `path`, for runs that resume. */
export async function deadLetterAppendFile(path: string): Promise<DeadLetterSink> {
  return new DeadLetterSink(await ndjsonAppendSink<DeadLetter>(path));
}
