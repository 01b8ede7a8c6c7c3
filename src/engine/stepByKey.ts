import { bufferCount, bufferTime, concatMap, filter, type OperatorFunction, pipe } from 'rxjs';
import type { KeyedStepper } from './keyedStepper.js';
import type { Envelope, Outcome } from './types.js';

export interface StepByKeyOptions {
  /** Most envelopes per micro-batch. Default 256. */
  readonly maxBatch?: number;
  /**
   * Longest an envelope waits for its batch to fill, ms. Without it a batch is stepped only when
   * full or when the source completes, which suits files; live sources should set it.
   */
  readonly maxDelayMs?: number;
}

/**
 * Runs envelopes through `stepper` in micro-batches and emits every outcome, in order. Batches are
 * processed strictly one after another; a failing batch errors the stream. Outcomes leave here
 * after their state is durable; a sink that must never lose a prediction is the stepper's `emit`.
 */
export function stepByKey(
  stepper: KeyedStepper,
  options: StepByKeyOptions = {},
): OperatorFunction<Envelope, Outcome> {
  const maxBatch = options.maxBatch ?? 256;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) {
    throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
  }
  const batches: OperatorFunction<Envelope, Envelope[]> =
    options.maxDelayMs === undefined
      ? bufferCount(maxBatch)
      : pipe(
          bufferTime<Envelope>(options.maxDelayMs, null, maxBatch),
          filter((batch) => batch.length > 0),
        );
  return pipe(
    batches,
    concatMap((batch) => stepper.process(batch)),
    concatMap((outcomes) => outcomes),
  );
}
