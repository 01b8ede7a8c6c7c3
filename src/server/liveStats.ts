/** A snapshot for the dashboard (`GET /v1/stats`): rates over the last seconds, recent latency. */
export interface StatsSnapshot {
  readonly eventsPerSecond: number;
  readonly predictionsPerSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly p99: number } | null;
  readonly totals: { readonly events: number; readonly predictions: number; readonly rejected: number };
}

const WINDOW_SECONDS = 5;
const LATENCY_SAMPLES = 2048;

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
    return {
      eventsPerSecond: events / WINDOW_SECONDS,
      predictionsPerSecond: predictions / WINDOW_SECONDS,
      latencyMs,
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
