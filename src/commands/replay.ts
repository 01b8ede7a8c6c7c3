import { access } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { bufferCount, concatMap, lastValueFrom, type OperatorFunction } from 'rxjs';
import type { ExpiryOptions } from '../engine/expiry.js';
import { KeyedStepper } from '../engine/keyedStepper.js';
import { checkStoreModel } from '../engine/modelCheck.js';
import type { Envelope, Outcome, Rejected } from '../engine/types.js';
import { UsageError } from '../errors.js';
import type { EventLimits } from '../events/limits.js';
import type { Position, Prediction } from '../events/types.js';
import { modelFeatures, type SidecarSpec } from '../features/modelFeatures.js';
import { modelFingerprint, outputSize, stateSize } from '../model/index.js';
import type { Model } from '../model/types.js';
import { type DeadLetterSink, deadLetterAppendFile, deadLetterFile } from '../sinks/deadLetter.js';
import { NdjsonSink, ndjsonAppendSink, ndjsonFileSink } from '../sinks/ndjson.js';
import { ndjsonFile, ndjsonStream } from '../sources/ndjsonFile.js';
import { CachedStore } from '../state/cachedStore.js';
import { LmdbStore } from '../state/lmdbStore.js';
import { MemoryStateStore } from '../state/memoryStore.js';
import type { StateStore } from '../state/types.js';

export interface ReplayOptions {
  readonly model: Model;
  /** A feature spec file's contents, used instead of the model's embedded spec. */
  readonly spec?: SidecarSpec | undefined;
  /** NDJSON events file; `-` reads `stdin`. */
  readonly input: string;
  /** Read when `input` is `-`. */
  readonly stdin?: Readable | undefined;
  /** Predictions file (truncated; appended to with `state`); predictions go to `stdout` when absent. */
  readonly output?: string | undefined;
  /** Dead-letter file (truncated; appended to with `state`) for rejected lines. */
  readonly deadLetter?: string | undefined;
  /** Events per micro-batch. */
  readonly maxBatch?: number | undefined;
  /**
   * LMDB state directory. State outlives the run: running again applies only the lines the
   * directory has not applied yet (a resume after a crash, or a longer file continued).
   */
  readonly state?: string | undefined;
  /** What to do with state another model wrote: `refuse` (default) to start, or `reset` those keys. */
  readonly onModelMismatch?: 'reset' | 'refuse' | undefined;
  /** Most keys' state held in memory; the rest stay in the state directory (needs `state`). */
  readonly maxKeysInMemory?: number | undefined;
  /** Idle keys expire. */
  readonly ttl?: ExpiryOptions | undefined;
  /** Bounds on each event; by default keys of 512 bytes and ids of 128, and no bound on `ts` (files of any era). */
  readonly limits?: Partial<EventLimits> | undefined;
  /** Ids remembered per key (default 8). */
  readonly idWindow?: number | undefined;
  /** The name the state remembers the input by, in place of its absolute path. */
  readonly sourceName?: string | undefined;
  /** Deepest nesting of arrays and objects a line may have (default 32); deeper lines are rejected. */
  readonly maxJsonDepth?: number | undefined;
  readonly stdout: Writable;
  /** Receives one line per rejected line, reset or expired key, then the summary line. */
  readonly stderr: Writable;
}

/** The `--input` that reads standard input. */
const STDIN = '-';

export interface ReplaySummary {
  /** Non-blank lines read. */
  readonly events: number;
  /** Events stepped now. */
  readonly predictions: number;
  readonly rejected: number;
  /** Events the state had already applied, skipped (some with their prediction repeated). */
  readonly duplicates: number;
  /** Of the skipped events, those whose stored prediction was written again. */
  readonly repeated: number;
  readonly expired: number;
  readonly stateResets: number;
}

/**
 * `cellstream replay`: runs the serving engine (KeyedStepper in micro-batches, as stepByKey does) across an events
 * file, over an in-memory store or, with `state`, an LMDB directory. Each batch's predictions
 * reach the operating system before its state is written, so a run killed at any point and run
 * again loses no prediction and steps no event twice (it may repeat a few predictions,
 * identically). A rejected line is reported and dead-lettered and the replay goes on; store,
 * model and I/O failures end it by throwing.
 */
export async function runReplay(options: ReplayOptions): Promise<ReplaySummary> {
  const fromStdin = options.input === STDIN;
  if (fromStdin) {
    if (options.stdin === undefined) throw new UsageError('--input -: no standard input to read');
    // State remembers lines by the input's name; stdin has none of its own, so the caller names it.
    if (options.state !== undefined && options.sourceName === undefined) {
      throw new UsageError(
        "--input - with --state needs --source-name NAME: the state remembers which lines of an input it applied by the input's name",
      );
    }
  } else {
    await access(options.input).catch((err: NodeJS.ErrnoException) => {
      throw new UsageError(`cannot read the events file '${options.input}' (${err.code})`);
    });
  }
  if (options.maxKeysInMemory !== undefined && options.state === undefined) {
    throw new UsageError('--max-keys-in-memory needs --state: without it every key is kept in memory');
  }
  const features = modelFeatures(options.model, options.spec);
  const store = await openStore(options);
  let stepper: KeyedStepper | undefined;
  let predictions: NdjsonSink<Prediction> | undefined;
  let deadLetters: DeadLetterSink | undefined;
  const counts = {
    events: 0,
    predictions: 0,
    rejected: 0,
    duplicates: 0,
    repeated: 0,
    expired: 0,
    stateResets: 0,
  };
  const report = (line: string) => options.stderr.write(`${line}\n`);

  const record = (outcome: Outcome) => {
    switch (outcome.kind) {
      case 'prediction':
        counts.events++;
        if (outcome.redelivered) {
          counts.duplicates++;
          counts.repeated++;
        } else {
          counts.predictions++;
        }
        // A repeat is marked as WebSocket answers mark it, so a reader of --output can skip it.
        predictions!.write(
          outcome.redelivered ? { ...outcome.prediction, redelivered: true } : outcome.prediction,
        );
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
        break;
      case 'state-reset':
        counts.stateResets++;
        report(`key '${outcome.key}': state reset: ${outcome.reason}`);
        break;
      case 'expired':
        counts.expired++;
        report(`key '${outcome.key}': state expired after seq ${outcome.seq}: ${outcome.reason}`);
        break;
    }
  };

  let failed = false;
  let failure: unknown;
  try {
    const onModelMismatch = options.onModelMismatch ?? 'refuse';
    const fingerprint = modelFingerprint(options.model);
    stepper = new KeyedStepper({
      model: options.model,
      store,
      onModelMismatch,
      encodeValues: features?.encodeValues,
      decodePrediction: features?.decode,
      ...(options.ttl ? { ttl: options.ttl } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.idWindow === undefined ? {} : { idWindow: options.idWindow }),
      // The sink's acknowledgement: a batch's state is written only once its lines are out.
      emit: async (outcomes) => {
        outcomes.forEach(record);
        await Promise.all([predictions!.flushed(), deadLetters?.flushed()]);
      },
    });
    if (options.state !== undefined) {
      await checkStoreModel({
        dir: options.state,
        store,
        fingerprint,
        label: stepper.modelLabel,
        onModelMismatch,
      });
    }
    const resume = options.state !== undefined;
    predictions = options.output
      ? resume
        ? await ndjsonAppendSink(options.output)
        : ndjsonFileSink(options.output)
      : new NdjsonSink(options.stdout, { end: false });
    if (options.deadLetter) {
      deadLetters = resume
        ? await deadLetterAppendFile(options.deadLetter)
        : deadLetterFile(options.deadLetter);
    }
    const depth = { maxJsonDepth: options.maxJsonDepth };
    const source = fromStdin
      ? ndjsonStream(options.stdin!, options.sourceName ?? 'stdin', depth)
      : ndjsonFile(options.input, { sourceName: options.sourceName, ...depth });
    await lastValueFrom(source.pipe(stepInOrder(stepper, options.maxBatch ?? 256, record)), {
      defaultValue: undefined,
    });
  } catch (err) {
    failed = true;
    failure = err;
  }
  // Flush what was written even after a failure; the first error is the one reported.
  await stepper?.close().catch(() => {});
  const closed = await Promise.allSettled([predictions?.close(), deadLetters?.close(), store.close()]);
  // `replay … | head`: the reader closing stdout ends the replay, as it ends any Unix filter; not
  // an error. Nothing is lost: a batch's state is written only once its lines were out, so a
  // resumed replay (--state) steps the rest.
  const readerGone = options.output === undefined && isBrokenPipe(failure);
  if (failed && !readerGone) throw failure;
  if (!readerGone) for (const c of closed) if (c.status === 'rejected') throw c.reason;

  report(
    readerGone ? `${summaryLine(counts)}; stopped: stdout was closed by its reader` : summaryLine(counts),
  );
  return counts;
}

/**
 * Steps the file's envelopes in micro-batches of `maxBatch` lines, as `stepByKey` does, except that
 * a line the source already rejected (too deep to parse) is recorded in its place: the envelopes
 * before it are stepped (and recorded by the stepper's `emit`) first.
 */
function stepInOrder(
  stepper: KeyedStepper,
  maxBatch: number,
  record: (rejected: Rejected) => void,
): OperatorFunction<Envelope | Rejected, void> {
  return (source) =>
    source.pipe(
      bufferCount(maxBatch),
      concatMap(async (items) => {
        let run: Envelope[] = [];
        for (const item of items) {
          if (!('kind' in item)) {
            run.push(item);
            continue;
          }
          if (run.length > 0) await stepper.process(run);
          run = [];
          record(item);
        }
        if (run.length > 0) await stepper.process(run);
      }),
    );
}

function isBrokenPipe(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'EPIPE';
}

async function openStore(options: ReplayOptions): Promise<StateStore> {
  // Without a state directory a replay keeps every key it meets for the whole run; memory is its only bound.
  if (options.state === undefined) return new MemoryStateStore({ maxKeys: Number.MAX_SAFE_INTEGER });
  const lmdb = await LmdbStore.open({ path: options.state });
  if (options.maxKeysInMemory === undefined) return lmdb;
  return new CachedStore({
    backing: lmdb,
    maxKeys: options.maxKeysInMemory,
    stateSize: stateSize(options.model),
    outputSize: outputSize(options.model),
  });
}

function summaryLine(c: ReplaySummary): string {
  let line = `replayed ${c.events} events: ${c.predictions} predictions, ${c.rejected} rejected`;
  if (c.duplicates > 0) {
    line += `, ${c.duplicates} already applied and skipped`;
    if (c.repeated > 0) line += ` (${c.repeated} of their predictions repeated)`;
  }
  if (c.expired > 0) line += `, ${c.expired} keys expired`;
  if (c.stateResets > 0) line += `, ${c.stateResets} keys reset`;
  return line;
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
