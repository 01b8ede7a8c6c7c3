import type { ErrorCode } from '../errors.js';
import type { Event, Position, Prediction } from '../events/types.js';

/**
 * One event as a source delivers it: either still raw text (the engine decodes it, so a decode
 * failure becomes a `rejected` outcome like any other) or already decoded.
 */
export type Envelope =
  | { readonly raw: string; readonly event?: undefined; readonly position: Position }
  | { readonly event: Event; readonly raw?: string; readonly position: Position };

/** What became of one envelope (or of a key's stored state); every envelope yields exactly one of
 * `prediction`, `rejected` or `duplicate`, so nothing is dropped silently; `state-reset` and
 * `expired` report what happened to a key's stored state. */
export type Outcome =
  /**
   * The event's prediction. `redelivered`: the event was already applied (a redelivery of the
   * key's last applied event) and this is its original prediction again, identical; the state
   * was not stepped.
   */
  | {
      readonly kind: 'prediction';
      readonly prediction: Prediction;
      readonly position: Position;
      readonly redelivered?: true;
    }
  /** The event could not be applied; the key's state is untouched. `raw` is the text as received. */
  | {
      readonly kind: 'rejected';
      readonly reason: string;
      readonly code: ErrorCode;
      readonly raw: string;
      readonly position: Position;
    }
  /** A redelivery of an event already applied to the key's state; not stepped again. */
  | { readonly kind: 'duplicate'; readonly key: string; readonly position: Position }
  /** The key's stored state was discarded before its next event (e.g. written by another model). */
  | { readonly kind: 'state-reset'; readonly key: string; readonly reason: string }
  /**
   * The key was idle past its TTL and its state was deleted; its next event starts at seq 1.
   * `lastTs` and `seq` are the expired state's last event time and step count.
   */
  | {
      readonly kind: 'expired';
      readonly key: string;
      readonly lastTs: number;
      readonly seq: number;
      readonly reason: string;
    };

/** The outcome of an envelope that could not be applied. */
export type Rejected = Extract<Outcome, { kind: 'rejected' }>;
