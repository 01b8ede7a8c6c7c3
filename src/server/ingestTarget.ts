import type { Event } from '../events/types.js';
import type { Result } from './pipeline.js';

/** An event taken by Kafka instead of the local engine: where it now sits in the input topic. */
export interface Accepted {
  readonly kind: 'accepted';
  readonly key: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

/** The answer to one ingested event: the engine's result, or (Kafka mode) its place in the input topic. */
export type IngestAnswer = Result | Accepted;

/**
 * Where `/ingest` and the demo feed send events: the local engine (`EnginePipeline`) or, when Kafka
 * is configured, the input topic, so each key is stepped by one engine only (the Kafka pipeline of
 * whichever instance owns the key's partition).
 */
export interface IngestTarget {
  /** Takes `event`; `done` is called once with its answer. */
  submit(event: Event, done: (answer: IngestAnswer) => void): void;
}
