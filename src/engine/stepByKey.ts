import { bufferCount, bufferTime, concatMap, filter, map, type OperatorFunction, pipe } from 'rxjs';
import { validateEvent } from '../events/decode.js';
import type { Event, Position } from '../events/types.js';
import type { KeyedStepper } from './keyedStepper.js';
import type { Envelope, Outcome } from './types.js';

/**
 * What `stepByKey` takes: an `Envelope` as the built-in sources emit it, an event object
 * (`{ key, ts, features | values | inputs }`, e.g. straight from `JSON.parse`), or an event's
 * JSON text. Plain events and texts carry no position, so only their `id` tells a redelivery.
 */
export type StepInput = Envelope | Event | string;

const NO_POSITION: Position = { kind: 'none' };

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
 * Runs envelopes (or plain events, or their JSON texts: see `StepInput`) through `stepper` in micro-batches and emits every outcome, in order. Batches are
 * processed strictly one after another; a failing batch errors the stream. Outcomes leave here
 * after their state is durable; a sink that must never lose a prediction is the stepper's `emit`.
 */
export function stepByKey(
  stepper: Pick<KeyedStepper, 'process'>,
  options: StepByKeyOptions = {},
): OperatorFunction<StepInput, Outcome> {
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
    map(toEnvelope),
    batches,
    concatMap((batch) => stepper.process(batch)),
    concatMap((outcomes) => outcomes),
  );
}

/**
 * An input as the stepper takes it. An object that is not a valid event goes on as its JSON text,
 * so the stepper rejects it with the same code and reason as the same text read from a file.
 */
export function toEnvelope(input: StepInput): Envelope {
  if (typeof input === 'string') return { raw: input, position: NO_POSITION };
  if (isEnvelope(input)) return input;
  try {
    return { event: validateEvent(input), position: NO_POSITION };
  } catch {
    return { raw: textOf(input), position: NO_POSITION };
  }
}

function isEnvelope(input: unknown): input is Envelope {
  if (typeof input !== 'object' || input === null || !('position' in input)) return false;
  const position = (input as { position: unknown }).position;
  return (
    typeof position === 'object' &&
    position !== null &&
    'kind' in position &&
    ('raw' in input || 'event' in input)
  );
}

/** The JSON text of a value that is not an event; what it prints as when it has none. */
function textOf(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
