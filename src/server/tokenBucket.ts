/**
 * A token bucket: holds up to `burst` tokens and refills at `perSecond`. `take(n)` spends `n`
 * tokens if the bucket has them. The clock is injectable so tests need not wait.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Spends `n` tokens and returns true, or returns false (spending nothing) if there are fewer. */
  take(n: number): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    this.last = t;
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
}
