import { type Kafka, Partitioners, type Producer } from 'kafkajs';

/**
 * One transactional producer per input partition, with the stable transactional id
 * `${appId}-${topic}-${partition}`: whichever instance owns the partition takes the id over, which
 * fences the previous owner (a zombie's later writes and commits are refused) and aborts the
 * transaction it left open.
 */
export class PartitionProducers {
  private readonly producers = new Map<number, Producer>();

  constructor(
    private readonly kafka: Kafka,
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
          const producer = this.kafka.producer({
            transactionalId: this.transactionalId(p),
            idempotent: true,
            maxInFlightRequests: 1,
            createPartitioner: Partitioners.DefaultPartitioner,
          });
          await producer.connect();
          // The first transaction registers the id with the coordinator: that is the fencing.
          const fence = await producer.transaction();
          await fence.abort();
          this.producers.set(p, producer);
        }),
    );
  }

  /** The producer of an acquired partition. */
  get(partition: number): Producer {
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
        await producer?.disconnect().catch(() => {});
      }),
    );
  }

  async releaseAll(): Promise<void> {
    await this.release([...this.producers.keys()]);
  }
}
