import type { Prediction } from '../events/types.js';

/**
 * The latest prediction of the most recently active keys, so `/v1/keys/:key` can show it; the
 * state store keeps state, not outputs. Bounded: the least recently updated key goes first.
 */
export class LastPredictions {
  private readonly byKey = new Map<string, Prediction>();

  constructor(private readonly maxKeys: number) {}

  get size(): number {
    return this.byKey.size;
  }

  record(prediction: Prediction): void {
    if (this.maxKeys === 0) return;
    // Re-inserting moves the key to the end of the Map's iteration order.
    this.byKey.delete(prediction.key);
    this.byKey.set(prediction.key, prediction);
    if (this.byKey.size > this.maxKeys) this.byKey.delete(this.byKey.keys().next().value!);
  }

  get(key: string): Prediction | undefined {
    return this.byKey.get(key);
  }
}
