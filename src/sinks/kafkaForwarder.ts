import { ServerUnavailableError } from '../errors.js';
import type { Event } from '../events/types.js';
import type { KafkaClient, KafkaProducer, OutgoingMessage } from '../kafka/adapter.js';
import { keyPartitioner } from '../kafka/keyPartitioner.js';
import { chunkMessages } from '../kafka/messageChunks.js';

/** Where a forwarded event now durably sits. */
export interface ForwardAck {
  readonly key: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

export interface KafkaForwarderOptions {
  readonly topic: string;
  /** Most events per produce request. Default 500; fewer when they are large (see `CHUNK_BYTES`). */
  readonly maxBatch?: number;
}

interface Pending {
  readonly event: Event;
  readonly partition: number;
  readonly message: OutgoingMessage;
  readonly resolve: (ack: ForwardAck) => void;
  readonly reject: (err: Error) => void;
}

/**
 * Produces events into the input topic, keyed by entity key, and tells each sender the partition
 * and offset its event got: the WebSocket side of "ingest at scale forwards into the input topic".
 *
 * One produce request is in flight at a time, so events reach each partition in the order they were
 * forwarded (a key's order is kept across connections), and events arriving meanwhile travel
 * together in the next request. Partitions are chosen here with Kafka's default (murmur2) key
 * partitioner, as every other producer of the topic uses, so an event's offset is its request's base
 * offset for that partition plus its place among that partition's messages in the request.
 */
export class KafkaForwarder {
  private readonly queue: Pending[] = [];
  private readonly maxBatch: number;
  private readonly partitionOf: (key: string) => number;
  private sending: Promise<void> | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly producer: KafkaProducer,
    private readonly topic: string,
    partitions: number,
    maxBatch: number,
  ) {
    this.maxBatch = maxBatch;
    this.partitionOf = keyPartitioner(topic, partitions);
  }

  /** Connects an idempotent producer to the (existing) `topic`. */
  static async open(kafka: KafkaClient, options: KafkaForwarderOptions): Promise<KafkaForwarder> {
    const admin = kafka.admin();
    await admin.connect();
    let partitions: number;
    try {
      const counts = await admin.partitionCounts([options.topic]);
      const count = counts.get(options.topic);
      if (count === undefined) throw new Error(`Kafka topic '${options.topic}' does not exist`);
      partitions = count;
    } finally {
      await admin.disconnect();
    }
    const producer = kafka.producer();
    await producer.connect();
    return new KafkaForwarder(producer, options.topic, partitions, options.maxBatch ?? 500);
  }

  /** Resolves once all in-sync replicas have the event; rejects `SERVER_UNAVAILABLE` if Kafka did not take it. */
  forward(event: Event): Promise<ForwardAck> {
    if (this.closed) {
      return Promise.reject(new ServerUnavailableError('the server is shutting down'));
    }
    return new Promise((resolve, reject) => {
      const partition = this.partitionOf(event.key);
      const message = { key: event.key, value: JSON.stringify(event), partition };
      this.queue.push({ event, partition, message, resolve, reject });
      this.sending ??= this.pump();
    });
  }

  /** Events forwarded and not yet acknowledged. */
  get pending(): number {
    return this.queue.length;
  }

  /** Takes no more events, waits until every event already forwarded is answered, disconnects. */
  close(): Promise<void> {
    this.closed = true;
    this.closing ??= (async () => {
      await this.sending;
      await this.producer.disconnect();
    })();
    return this.closing;
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0) {
      // Kafka refuses a whole request whose record batch for a partition passes message.max.bytes:
      // the events of every connection waiting together would fail with it, for the size of some.
      const [first = []] = chunkMessages(this.queue.slice(0, this.maxBatch).map((p) => p.message));
      const batch = this.queue.splice(0, Math.max(1, first.length));
      try {
        const metadata = await this.producer.sendBatch({
          topicMessages: [{ topic: this.topic, messages: batch.map((p) => p.message) }],
          acks: -1,
        });
        const base = new Map(metadata.map((m) => [m.partition, m.baseOffset]));
        const seen = new Map<number, bigint>();
        for (const p of batch) {
          const baseOffset = base.get(p.partition);
          if (baseOffset === undefined)
            throw new Error(`Kafka returned no offset for partition ${p.partition}`);
          const index = seen.get(p.partition) ?? 0n;
          seen.set(p.partition, index + 1n);
          p.resolve({
            key: p.event.key,
            topic: this.topic,
            partition: p.partition,
            offset: (BigInt(baseOffset) + index).toString(),
          });
        }
      } catch (err) {
        const error = new ServerUnavailableError(
          `could not forward the event to Kafka topic '${this.topic}': ${err instanceof Error ? err.message : String(err)}`,
          { cause: err },
        );
        // Already-resolved promises ignore this; the rest learn that Kafka did not take them.
        for (const p of batch) p.reject(error);
      }
    }
    this.sending = undefined;
  }
}
