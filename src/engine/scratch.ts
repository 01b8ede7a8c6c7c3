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

/**
 * Slots of `size` floats back to back in one buffer, with a view of each made once, grown to
 * the most slots asked for: for arrays handed out per key (to a store to read into, in records
 * to write), where a view per key per batch would cost an allocation each. Valid until the next
 * `reserve` that grows the buffer.
 */
export class Slots {
  private buffer = new Float32Array(0);
  private capacity = 0;
  private slotViews: Float32Array[] = [];
  private prefix: Float32Array = this.buffer;

  constructor(readonly size: number) {}

  /** Makes room for `n` slots. */
  reserve(n: number): void {
    if (n <= this.capacity) return;
    const size = this.size;
    this.capacity = Math.max(n, 2 * this.capacity);
    this.buffer = new Float32Array(this.capacity * size);
    const buffer = this.buffer;
    this.slotViews = Array.from({ length: this.capacity }, (_, i) =>
      buffer.subarray(i * size, (i + 1) * size),
    );
    this.prefix = buffer;
  }

  /** A view of each slot (at least as many as reserved). */
  get views(): readonly Float32Array[] {
    return this.slotViews;
  }

  /** The first `n` slots as one array of `n × size` floats. */
  first(n: number): Float32Array {
    if (this.prefix.length !== n * this.size) this.prefix = this.buffer.subarray(0, n * this.size);
    return this.prefix;
  }
}
