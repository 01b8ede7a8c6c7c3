import type { KafkaClient, TransactionalProducer } from '../kafka/adapter.js';

/**
 * One transactional producer per input partition, with the stable transactional id
 * `${appId}-${topic}-${partition}`: whichever instance owns the partition takes the id over, which
 * fences the previous owner (a zombie's later writes and commits are refused) and aborts the
 * transaction it left open.
 */
export class PartitionProducers {
  private readonly producers = new Map<number, TransactionalProducer>();
  /** Every producer made and not yet disconnected, held or not, so that `releaseAll` leaves none open. */
  private readonly open = new Set<TransactionalProducer>();
  private closed = false;

  constructor(
    private readonly kafka: KafkaClient,
    private readonly appId: string,
    private readonly topic: string,
  ) {}

  transactionalId(partition: number): string {
    return `${this.appId}-${this.topic}-${partition}`;
  }

  /** Takes over the transactional ids of `partitions` not yet held (fencing their previous owners). */
  async acquire(partitions: readonly number[]): Promise<void> {
    await Promise.all(
      partitions
        .filter((p) => !this.producers.has(p))
        .map(async (p) => {
          const producer = this.kafka.transactionalProducer(this.transactionalId(p));
          this.open.add(producer);
          try {
            await producer.connect();
            // The first transaction registers the id with the coordinator: that is the fencing.
            const fence = await producer.transaction();
            await fence.abort();
            // `releaseAll` ran meanwhile: a connect that went on after it must not stay open.
            if (this.closed) throw new Error('the transactional producers were released');
          } catch (err) {
            // Not held by anyone: its open connection would keep the process alive after stop.
            await this.close(producer);
            throw err;
          }
          const previous = this.producers.get(p);
          this.producers.set(p, producer);
          // Two acquires of one partition overlapped: this one fenced the other, which is useless now.
          if (previous && previous !== producer) await this.close(previous);
        }),
    );
  }

  /** The producer of an acquired partition. */
  get(partition: number): TransactionalProducer {
    const producer = this.producers.get(partition);
    if (!producer) throw new Error(`no transactional producer for partition ${partition}`);
    return producer;
  }

  /** Lets go of `partitions`' producers (after a revocation, or after being fenced). */
  async release(partitions: readonly number[]): Promise<void> {
    await Promise.all(
      partitions.map(async (p) => {
        const producer = this.producers.get(p);
        this.producers.delete(p);
        if (producer) await this.close(producer);
      }),
    );
  }

  async releaseAll(): Promise<void> {
    this.closed = true;
    await this.release([...this.producers.keys()]);
    // Producers of acquires still under way (e.g. the broker away) are not in the map yet.
    await Promise.all([...this.open].map((producer) => this.close(producer)));
  }

  private async close(producer: TransactionalProducer): Promise<void> {
    this.open.delete(producer);
    await producer.disconnect().catch(() => {});
  }
}
