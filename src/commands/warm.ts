import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { checkStoreModel } from '../engine/modelCheck.js';
import type { Rejected } from '../engine/types.js';
import { UsageError } from '../errors.js';
import type { EventLimits } from '../events/limits.js';
import type { SidecarSpec } from '../features/modelFeatures.js';
import { modelFingerprint } from '../model/index.js';
import type { Model } from '../model/types.js';
import { type WarmSummary, warmKeys } from '../rollout/warm.js';
import { type DeadLetterSink, deadLetterAppendFile } from '../sinks/deadLetter.js';
import { ndjsonLines } from '../sources/ndjsonFile.js';
import { LmdbStore } from '../state/lmdbStore.js';
import { openModelStore } from '../state/modelStates.js';

/** Where `warm` keeps the lines it could not apply when no `--dead-letter` is given: beside the state. */
export const WARM_DEAD_LETTER_FILE = 'warm-dead-letter.ndjson';

export interface WarmCommandOptions {
  readonly model: Model;
  /** A feature spec file's contents, used instead of the model's embedded spec. */
  readonly spec?: SidecarSpec | undefined;
  /** The NDJSON archive of past events. */
  readonly input: string;
  /** The LMDB state directory the model will serve from (with `namespace`: serve's `state.path`). */
  readonly state: string;
  /**
   * The model's namespace in the state of `serve` with several models (`<state>/models`, see
   * docs/rollout.md), e.g. `visits@2`; without it `state` is a single-model state directory.
   */
  readonly namespace?: string | undefined;
  /** Dead-letter file, appended to; default `<state>/warm-dead-letter.ndjson`. */
  readonly deadLetter?: string | undefined;
  readonly maxBatch?: number | undefined;
  readonly maxStagedKeys?: number | undefined;
  readonly onModelMismatch?: 'reset' | 'refuse' | undefined;
  /** The name the state remembers the archive by, in place of its absolute path. */
  readonly sourceName?: string | undefined;
  readonly maxJsonDepth?: number | undefined;
  readonly limits?: Partial<EventLimits> | undefined;
  readonly idWindow?: number | undefined;
  /** Receives one line per rejected line, then the summary line. */
  readonly stderr: Writable;
}

/**
 * `cellstream warm`: computes a model's per-key state from an NDJSON archive of past events
 * (`warmKeys`) into an LMDB state directory, so the model starts serving those keys from their
 * whole history instead of from zero. Rejected lines are reported, dead-lettered and counted;
 * a missing archive, a state directory of another model (unless `reset`) and store failures
 * end it by throwing.
 */
export async function runWarm(options: WarmCommandOptions): Promise<WarmSummary> {
  await access(options.input, constants.R_OK).catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(
      `cannot read the archive '${options.input}' (${err.code}): give --input an NDJSON file of past events`,
    );
  });
  if (!(await stat(options.input)).isFile()) {
    throw new UsageError(
      `the archive '${options.input}' is not a file: give --input an NDJSON file of past events`,
    );
  }
  const store =
    options.namespace === undefined
      ? await LmdbStore.open({ path: options.state })
      : await openModelStore(
          { state: { store: 'lmdb', path: options.state, maxKeys: 0 } },
          options.namespace,
        );
  let deadLetters: DeadLetterSink | undefined;
  let summary: WarmSummary | undefined;
  let failure: unknown;
  const report = (line: string) => options.stderr.write(`${line}\n`);
  try {
    const onModelMismatch = options.onModelMismatch ?? 'refuse';
    const fingerprint = modelFingerprint(options.model);
    // A namespace holds one model's records, each with its fingerprint, which the engine checks per
    // key (refused or reset as `onModelMismatch` says); a whole directory has its model recorded.
    if (options.namespace === undefined)
      await checkStoreModel({
        dir: options.state,
        store,
        fingerprint,
        // The label the engine gives the model's predictions.
        label: `${options.model.name}@${options.model.version ?? fingerprint.slice(0, 8)}`,
        onModelMismatch,
      });
    deadLetters = await deadLetterAppendFile(
      options.deadLetter ?? join(options.state, WARM_DEAD_LETTER_FILE),
    );
    const sink = deadLetters;
    summary = await warmKeys({
      model: options.model,
      spec: options.spec,
      events: ndjsonLines(options.input, {
        sourceName: options.sourceName,
        maxJsonDepth: options.maxJsonDepth,
      }),
      store,
      onModelMismatch,
      maxBatch: options.maxBatch,
      maxStagedKeys: options.maxStagedKeys,
      limits: options.limits,
      idWindow: options.idWindow,
      // A rejection is on disk before the state written after it.
      onRejected: (rejected: Rejected) => {
        report(`${where(rejected)}: ${rejected.reason}`);
        sink.write(rejected);
        return sink.flushed();
      },
    });
  } catch (err) {
    failure = err;
  }
  const closed = await Promise.allSettled([deadLetters?.close(), store.close()]);
  if (failure !== undefined || summary === undefined) throw failure;
  for (const c of closed) if (c.status === 'rejected') throw c.reason;
  report(summaryLine(summary));
  return summary;
}

function where(rejected: Rejected): string {
  return rejected.position.kind === 'line' ? `line ${rejected.position.line}` : 'event';
}

/** The one line a warm start ends with: what it did, and how fast it replayed history. */
export function summaryLine(s: WarmSummary): string {
  let line = `warmed ${s.keys} keys from ${s.events} events: ${s.stepped} stepped, ${s.rejected} rejected`;
  if (s.duplicates > 0) line += `, ${s.duplicates} already applied and skipped`;
  if (s.stateResets > 0) line += `, ${s.stateResets} keys of another model reset`;
  const seconds = s.elapsedMs / 1000;
  line += `; ${seconds.toFixed(seconds < 10 ? 2 : 1)} s, ${Math.round(s.eventsPerSecond)} events/s replayed`;
  return line;
}
