/**
 * The wire contracts (docs/architecture.md, Contracts): what an event and a prediction look like once decoded.
 * Sources produce `Event`s (after `decodeEvent`), the engine produces `Prediction`s.
 */

/** Where an event came from, so the engine can tell a redelivery from a new event. */
export type Position =
  | { readonly kind: 'offset'; readonly topic: string; readonly partition: number; readonly offset: string }
  | { readonly kind: 'line'; readonly file: string; readonly line: number }
  | { readonly kind: 'none' };

export interface Event {
  /** Entity key: the unit of recurrent state. */
  readonly key: string;
  /** Event time, ms since the epoch (ISO-8601 on the wire is converted). */
  readonly ts: number;
  /** The model's input vector, for single-input models. */
  readonly features?: readonly number[];
  /** Named feature values, encoded by the model's feature spec. */
  readonly values?: Readonly<Record<string, unknown>>;
  /** Per-input vectors for multi-input models. */
  readonly inputs?: Readonly<Record<string, readonly number[]>>;
  /** Idempotency id. */
  readonly id?: string;
  /** Start a new sequence for this key before applying the event. */
  readonly reset?: boolean;
}

export interface Prediction {
  readonly key: string;
  readonly ts: number;
  /** Steps applied to this key's current sequence, 1 for its first event. */
  readonly seq: number;
  /** `name@version` of the model that produced it. */
  readonly model: string;
  /** The network's output vector exactly as computed. */
  readonly output: number[];
  /** Decoded fields (label, probabilities, …) may stand beside `output`. */
  readonly [decoded: string]: unknown;
}
