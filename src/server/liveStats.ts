/** A snapshot for the dashboard (`GET /v1/stats`): rates over the last seconds, recent latency. */
export interface StatsSnapshot {
  readonly eventsPerSecond: number;
  readonly predictionsPerSecond: number;
  /**
   * End to end, an event's arrival to its answer: the wait for its batch, the batch's steps and
   * the durable state write (an fsync'd LMDB commit; in Kafka mode also produce and commit).
   */
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly p99: number } | null;
  /**
   * The engine's micro-batches lately: how long one took (state read, steps and, outside Kafka
   * mode, the durable write) and how many events it held. Apart from `latencyMs`, which adds the
   * wait for a batch (and in Kafka mode the produce and the durable write).
   */
  readonly batch: {
    readonly ms: { readonly p50: number; readonly p95: number };
    readonly eventsPerBatch: number;
  } | null;
  readonly totals: { readonly events: number; readonly predictions: number; readonly rejected: number };
}

const WINDOW_SECONDS = 5;
const LATENCY_SAMPLES = 2048;
const BATCH_SAMPLES = 256;

/**
 * Rolling figures for the dashboard, cheap to keep on the hot path: per-second counters over the
 * last few whole seconds, and the latencies of the last events in a fixed ring.
 */
export class LiveStats {
  private readonly events = new Float64Array(WINDOW_SECONDS + 1);
  private readonly predictions = new Float64Array(WINDOW_SECONDS + 1);
  private second: number;
  private readonly latencies = new Float64Array(LATENCY_SAMPLES);
  private latencyCount = 0;
  private readonly batchMs = new Float64Array(BATCH_SAMPLES);
  private readonly batchSizes = new Float64Array(BATCH_SAMPLES);
  private batchCount = 0;
  private totals = { events: 0, predictions: 0, rejected: 0 };

  constructor(private readonly now: () => number = Date.now) {
    this.second = Math.floor(now() / 1000);
  }

  event(count = 1): void {
    this.events[this.slot()] += count;
    this.totals.events += count;
  }

  prediction(latencySeconds: number): void {
    this.predictions[this.slot()] += 1;
    this.totals.predictions += 1;
    this.latencies[this.latencyCount++ % LATENCY_SAMPLES] = latencySeconds * 1000;
  }

  /** A micro-batch of `size` events took `seconds` in the engine. */
  batch(size: number, seconds: number): void {
    const slot = this.batchCount++ % BATCH_SAMPLES;
    this.batchMs[slot] = seconds * 1000;
    this.batchSizes[slot] = size;
  }

  rejected(): void {
    this.totals.rejected += 1;
  }

  snapshot(): StatsSnapshot {
    const current = this.slot();
    let events = 0;
    let predictions = 0;
    // The current second is still filling; the rate is over the whole seconds before it.
    for (let i = 0; i < this.events.length; i++) {
      if (i === current) continue;
      events += this.events[i];
      predictions += this.predictions[i];
    }
    const n = Math.min(this.latencyCount, LATENCY_SAMPLES);
    let latencyMs: StatsSnapshot['latencyMs'] = null;
    if (n > 0) {
      const sorted = this.latencies.slice(0, n).sort();
      const at = (q: number) => round(sorted[Math.min(n - 1, Math.floor(q * n))]);
      latencyMs = { p50: at(0.5), p95: at(0.95), p99: at(0.99) };
    }
    const b = Math.min(this.batchCount, BATCH_SAMPLES);
    let batch: StatsSnapshot['batch'] = null;
    if (b > 0) {
      const sorted = this.batchMs.slice(0, b).sort();
      const at = (q: number) => round(sorted[Math.min(b - 1, Math.floor(q * b))]);
      let size = 0;
      for (let i = 0; i < b; i++) size += this.batchSizes[i];
      batch = { ms: { p50: at(0.5), p95: at(0.95) }, eventsPerBatch: Math.round((size / b) * 10) / 10 };
    }
    return {
      eventsPerSecond: events / WINDOW_SECONDS,
      predictionsPerSecond: predictions / WINDOW_SECONDS,
      latencyMs,
      batch,
      totals: { ...this.totals },
    };
  }

  /** The ring slot of the current second, zeroing the slots of seconds that passed unseen. */
  private slot(): number {
    const second = Math.floor(this.now() / 1000);
    const size = this.events.length;
    if (second !== this.second) {
      const steps = Math.min(second - this.second, size);
      for (let i = 1; i <= steps; i++) {
        const s = (this.second + i) % size;
        this.events[s] = 0;
        this.predictions[s] = 0;
      }
      this.second = second;
    }
    return second % size;
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
