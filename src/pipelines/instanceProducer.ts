import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { KafkaClient, TransactionalProducer } from '../kafka/adapter.js';

/**
 * One transactional producer for all of an instance's partitions, for a client whose transactions
 * carry the consumer's group metadata (KIP-447): the group coordinator refuses the offsets of a
 * member a rebalance has fenced, so the transactional id need not move with the partitions.
 *
 * The id is stable for one state directory on one host (`${appId}-${hash}`), so an instance that
 * restarts after a crash takes its own id over at once, which aborts the transaction it left
 * open instead of leaving it to the transaction timeout. The same shape as `PartitionProducers`,
 * so the pipeline drives either alike: `release` lets go of the producer (after a revocation or a
 * fencing) and the next `acquire` opens it again.
 */
export class InstanceProducer {
  private producer: TransactionalProducer | undefined;
  private opening: Promise<TransactionalProducer> | undefined;
  private readonly id: string;
  private closed = false;

  constructor(
    private readonly kafka: KafkaClient,
    appId: string,
    stateDir: string,
  ) {
    const where = createHash('sha256')
      .update(`${hostname()}\0${resolve(stateDir)}`)
      .digest('hex')
      .slice(0, 16);
    this.id = `${appId}-${where}`;
  }

  transactionalId(_partition?: number): string {
    return this.id;
  }

  async acquire(_partitions: readonly number[]): Promise<void> {
    if (this.producer) return;
    this.opening ??= (async () => {
      const producer = this.kafka.transactionalProducer(this.id);
      try {
        await producer.connect();
        // The first transaction registers the id (aborting what a previous run of it left open).
        const fence = await producer.transaction();
        await fence.abort();
        if (this.closed) throw new Error('the transactional producer was released');
      } catch (err) {
        await producer.disconnect().catch(() => {});
        throw err;
      }
      return producer;
    })();
    try {
      this.producer = await this.opening;
    } finally {
      this.opening = undefined;
    }
  }

  get(_partition: number): TransactionalProducer {
    if (!this.producer) throw new Error('no transactional producer: acquire first');
    return this.producer;
  }

  async release(_partitions: readonly number[]): Promise<void> {
    const producer = this.producer;
    this.producer = undefined;
    await producer?.disconnect().catch(() => {});
  }

  async releaseAll(): Promise<void> {
    this.closed = true;
    await this.opening?.catch(() => {});
    await this.release([]);
  }
}
