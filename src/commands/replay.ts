import { access } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { lastValueFrom, tap } from 'rxjs';
import { decodePredictions } from '../engine/decodePredictions.js';
import { KeyedStepper } from '../engine/keyedStepper.js';
import { stepByKey } from '../engine/stepByKey.js';
import type { Outcome } from '../engine/types.js';
import { UsageError } from '../errors.js';
import type { Position, Prediction } from '../events/types.js';
import { modelFeatures, type SidecarSpec } from '../features/modelFeatures.js';
import type { Model } from '../model/types.js';
import { type DeadLetterSink, deadLetterFile } from '../sinks/deadLetter.js';
import { NdjsonSink, ndjsonFileSink } from '../sinks/ndjson.js';
import { ndjsonFile } from '../sources/ndjsonFile.js';
import { MemoryStateStore } from '../state/memoryStore.js';

export interface ReplayOptions {
  readonly model: Model;
  /** A feature spec file's contents, used instead of the model's embedded spec. */
  readonly spec?: SidecarSpec | undefined;
  /** NDJSON events file. */
  readonly input: string;
  /** Predictions file (truncated); predictions go to `stdout` when absent. */
  readonly output?: string | undefined;
  /** Dead-letter file (truncated) for rejected lines. */
  readonly deadLetter?: string | undefined;
  /** Events per micro-batch. */
  readonly maxBatch?: number | undefined;
  readonly stdout: Writable;
  /** Receives one line per rejected, duplicate or reset event, then the summary line. */
  readonly stderr: Writable;
}

export interface ReplaySummary {
  /** Non-blank lines read. */
  readonly events: number;
  readonly predictions: number;
  readonly rejected: number;
  readonly duplicates: number;
}

/**
 * `cellstream replay`: runs the serving engine (KeyedStepper through stepByKey, over an in-memory
 * store) across an events file. A rejected line is reported and dead-lettered and the replay goes
 * on; store, model and I/O failures end it by throwing.
 */
export async function runReplay(options: ReplayOptions): Promise<ReplaySummary> {
  await access(options.input).catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read the events file '${options.input}' (${err.code})`);
  });
  const features = modelFeatures(options.model, options.spec);
  // A replay keeps every key it meets for the whole run; memory is its only bound.
  const store = new MemoryStateStore({ maxKeys: Number.MAX_SAFE_INTEGER });
  const stepper = new KeyedStepper({ model: options.model, store, encodeValues: features?.encodeValues });
  const predictions: NdjsonSink<Prediction> = options.output
    ? ndjsonFileSink(options.output)
    : new NdjsonSink(options.stdout, { end: false });
  const deadLetters: DeadLetterSink | undefined = options.deadLetter
    ? deadLetterFile(options.deadLetter)
    : undefined;
  const counts = { events: 0, predictions: 0, rejected: 0, duplicates: 0 };
  const report = (line: string) => options.stderr.write(`${line}\n`);

  const record = (outcome: Outcome) => {
    switch (outcome.kind) {
      case 'prediction':
        counts.events++;
        counts.predictions++;
        predictions.write(outcome.prediction);
        break;
      case 'rejected':
        counts.events++;
        counts.rejected++;
        report(`${where(outcome.position)}: ${outcome.reason}`);
        deadLetters?.write(outcome);
        break;
      case 'duplicate':
        counts.events++;
        counts.duplicates++;
        report(`${where(outcome.position)}: already applied to key '${outcome.key}', skipped`);
        break;
      case 'state-reset':
        report(`key '${outcome.key}': state reset: ${outcome.reason}`);
        break;
    }
  };

  let failed = false;
  let failure: unknown;
  try {
    await lastValueFrom(
      ndjsonFile(options.input).pipe(
        stepByKey(stepper, options.maxBatch === undefined ? {} : { maxBatch: options.maxBatch }),
        decodePredictions(features?.decode),
        tap(record),
      ),
      { defaultValue: undefined },
    );
  } catch (err) {
    failed = true;
    failure = err;
  }
  // Flush what was written even after a failure; the first error is the one reported.
  const closed = await Promise.allSettled([predictions.close(), deadLetters?.close(), store.close()]);
  if (failed) throw failure;
  for (const c of closed) if (c.status === 'rejected') throw c.reason;

  const duplicates = counts.duplicates > 0 ? `, ${counts.duplicates} duplicates skipped` : '';
  report(
    `replayed ${counts.events} events: ${counts.predictions} predictions, ${counts.rejected} rejected${duplicates}`,
  );
  return counts;
}

function where(position: Position): string {
  switch (position.kind) {
    case 'line':
      return `line ${position.line}`;
    case 'offset':
      return `${position.topic}[${position.partition}]@${position.offset}`;
    case 'none':
      return 'event';
  }
}
