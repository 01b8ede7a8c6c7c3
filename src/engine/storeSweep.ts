import type { ReadInto, StateRecord, StateStore } from '../state/types.js';

/**
 * Walks a store's entries a bounded number at a time, carrying on across calls: one pass over
 * the store after another. A pass reads from the store's iteration snapshot, so callers must
 * re-read a record before acting on it. The records' states and last outputs all share one
 * pair of arrays (copying each out would cost an allocation per record): only their other
 * fields mean anything.
 */
export class StoreSweep {
  private pass: AsyncIterator<[string, StateRecord]> | undefined;
  private readonly into: ReadInto;

  /** `stateSize`, `outputSize`: the model's, whose records share the arrays. */
  constructor(
    private readonly store: StateStore,
    stateSize: number,
    outputSize: number,
  ) {
    this.into = { states: [new Float32Array(stateSize)], outputs: [new Float32Array(outputSize)] };
  }

  /** Up to `limit` further entries; when a pass ends, the next call starts a new one. */
  async next(limit: number): Promise<Array<[string, StateRecord]>> {
    const out: Array<[string, StateRecord]> = [];
    if (limit <= 0) return out;
    this.pass ??= this.store.entries(this.into)[Symbol.asyncIterator]();
    while (out.length < limit) {
      const step = await this.pass.next();
      if (step.done) {
        this.pass = undefined;
        break;
      }
      out.push(step.value);
    }
    return out;
  }

  /** Ends the current pass, releasing the store's iteration (an LMDB read transaction). */
  async stop(): Promise<void> {
    const pass = this.pass;
    this.pass = undefined;
    await pass?.return?.();
  }
}
