/**
 * Float32 buffers the engine reuses from batch to batch, each grown to the largest batch seen.
 * A typed array of more than 64 bytes is allocated outside V8's heap, at a cost (measured ~1.5 µs
 * with GC, on a loaded 2-core machine) close to an LSTM step at H=64, so per-batch buffers would
 * dominate small batches. A view returned by `floats` is valid until the next batch asks for the
 * same buffer: only what no store, sink or caller keeps may live in one (stores copy states in).
 */
export class Scratch {
  private readonly buffers: Float32Array[] = [];

  /** A view of `length` floats of buffer `id`, holding whatever was last written there. */
  floats(id: number, length: number): Float32Array {
    let b = this.buffers[id];
    if (!b || b.length < length) {
      b = new Float32Array(Math.max(length, 2 * (b?.length ?? 0)));
      this.buffers[id] = b;
    }
    return b.length === length ? b : b.subarray(0, length);
  }
}
