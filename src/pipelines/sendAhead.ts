/** A send that failed, with what it was for. */
export interface FailedSend<T> {
  readonly owner: T;
  readonly error: unknown;
}

/**
 * One send at a time that the batch which made it does not wait for: a batch's predictions travel
 * to Kafka while the next batch is fetched and stepped. The next send starts only once this one
 * has settled (`settle`), so requests still reach the producer one at a time and in order, and so
 * is everything that makes state durable. A failure is kept, with its owner, for `settle` to hand
 * back: the owner's events must be redelivered.
 */
export class SendAhead<T> {
  private current: Promise<void> | undefined;
  private failure: FailedSend<T> | undefined;

  /** Waits for the send in flight, if any; resolves with its failure (once), if it failed. */
  async settle(): Promise<FailedSend<T> | undefined> {
    await this.current;
    this.current = undefined;
    const failure = this.failure;
    this.failure = undefined;
    return failure;
  }

  /** Starts `send` for `owner`. Call after `settle`: a send still in flight is a `RangeError`. */
  start(owner: T, send: () => Promise<void>): void {
    if (this.current) throw new RangeError('a send is still in flight: settle() it first');
    this.current = send().then(
      () => {},
      (error: unknown) => {
        this.failure = { owner, error };
      },
    );
  }
}
