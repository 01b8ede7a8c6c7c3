/**
 * Tells a failure that may repeat for as long as its cause lasts (a consumer the client retries in
 * place every few hundred milliseconds) at once the first time, then at most once per interval
 * with how many came meanwhile: an operator sees why a partition makes no progress without a log
 * line per retry.
 */
export class RepeatThrottle<T> {
  private lastToldAt: number | undefined;
  private unreported = 0;

  constructor(
    private readonly tell: (value: T, repeats: number) => void,
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** One occurrence; told now when the interval has passed since the last one told. */
  report(value: T): void {
    this.unreported++;
    const now = this.now();
    if (this.lastToldAt !== undefined && now - this.lastToldAt < this.intervalMs) return;
    this.lastToldAt = now;
    const repeats = this.unreported;
    this.unreported = 0;
    this.tell(value, repeats);
  }
}
