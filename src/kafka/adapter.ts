/**
 * cellstream's own view of a Kafka client: what the source, the sinks, the changelog and the
 * transactions need, and no more. Each client library (kafkajs, @platformatic/kafka) has one
 * implementation of it in src/kafka/; nothing outside src/kafka/ imports a client library, so
 * the state, source, sink and config code is the same whichever client runs it.
 *
 * The shapes follow what the pipeline was written against (batches of one partition handed over
 * one at a time, offsets resolved by the handler, a join event carrying the assignment): a client
 * that works differently adapts to them, rather than the pipeline to each client.
 */

/** Which client library implements the adapter. */
export type KafkaClientName = 'kafkajs' | 'platformatic';

export const KAFKA_CLIENTS: readonly KafkaClientName[] = ['kafkajs', 'platformatic'];

/** How much the client library itself logs (to stderr). */
export type KafkaLogLevel = 'nothing' | 'error' | 'warn' | 'info' | 'debug';

/** A message to produce. A `partition` set by the caller wins; otherwise Kafka's murmur2 of the key. */
export interface OutgoingMessage {
  readonly key?: string | Buffer | null;
  readonly value: string | Buffer | null;
  readonly headers?: Readonly<Record<string, string | Buffer>>;
  readonly partition?: number;
}

export interface TopicMessages {
  readonly topic: string;
  readonly messages: readonly OutgoingMessage[];
}

/** What Kafka acknowledged for one partition of a send: its first offset there. */
export interface SentRecord {
  readonly topicName: string;
  readonly partition: number;
  readonly baseOffset?: string;
}

/** A producer or an open transaction: whatever the messages go out through. */
export interface KafkaSender {
  /** Resolves once every in-sync replica has every message (`acks` is -1: all). */
  sendBatch(batch: { topicMessages: TopicMessages[]; acks?: -1 }): Promise<SentRecord[]>;
}

/** An idempotent producer. */
export interface KafkaProducer extends KafkaSender {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
}

export interface OffsetsOfGroup {
  readonly consumerGroupId: string;
  readonly topics: ReadonlyArray<{
    readonly topic: string;
    readonly partitions: ReadonlyArray<{ readonly partition: number; readonly offset: string }>;
  }>;
  /**
   * The group member whose offsets these are. A client with KIP-447 sends its generation and
   * member id with them, so the coordinator refuses the commit of a member fenced by a rebalance;
   * a client without ignores it.
   */
  readonly consumer?: KafkaConsumer;
}

export interface KafkaTransaction extends KafkaSender {
  /** Adds consumed offsets to the transaction: they commit with it, or not at all. */
  sendOffsets(offsets: OffsetsOfGroup): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/** A producer with a transactional id; taking the id over fences its previous holder. */
export interface TransactionalProducer {
  connect(): Promise<void>;
  transaction(): Promise<KafkaTransaction>;
  disconnect(): Promise<void>;
}

export interface TopicToCreate {
  readonly topic: string;
  readonly numPartitions: number;
  /** -1: the broker's default. */
  readonly replicationFactor: number;
  readonly configEntries: ReadonlyArray<{ readonly name: string; readonly value: string }>;
}

export interface PartitionOffsets {
  readonly partition: number;
  /** The log start offset. */
  readonly low: string;
  /** The last stable offset (read_committed end). */
  readonly high: string;
}

export interface KafkaAdmin {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  listTopics(): Promise<string[]>;
  /**
   * Creates the topics. A topic another instance created first is not an error, nor is a broker
   * that does not know a topic it has just created yet (`ensureTopics` waits that out).
   */
  createTopics(topics: readonly TopicToCreate[]): Promise<void>;
  /** Each topic's partition count. */
  partitionCounts(topics: readonly string[]): Promise<Map<string, number>>;
  /**
   * Each topic's partitions with their leader's node id (-1: none yet). A topic the broker does
   * not know throws an error whose `protocolErrorType` is `UNKNOWN_TOPIC_OR_PARTITION`.
   */
  topicLeaders(topics: readonly string[]): Promise<Map<string, readonly number[]>>;
  fetchTopicOffsets(topic: string): Promise<PartitionOffsets[]>;
  /**
   * Offsets `groupId` committed for `topic`'s partitions (only `partitions`, when given); -1 where
   * none. A client with KIP-447 reads them as stable: it waits while a transaction holds offsets of
   * those partitions pending.
   */
  fetchCommittedOffsets(
    groupId: string,
    topic: string,
    partitions?: readonly number[],
  ): Promise<Array<{ readonly partition: number; readonly offset: string }>>;
}

/** A consumed message's headers by name; a name sent more than once has each value, in order. */
export type MessageHeaders = Readonly<
  Record<string, Buffer | string | ReadonlyArray<Buffer | string> | undefined>
>;

/** A consumed message. */
export interface ConsumedMessage {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly offset: string;
  readonly headers?: MessageHeaders;
  /** Its record timestamp, ms since the epoch, as text. */
  readonly timestamp?: string;
}

/** Messages of one partition from one fetch, in offset order. */
export interface ConsumedBatch {
  readonly topic: string;
  readonly partition: number;
  /** The partition's end at the fetch. */
  readonly highWatermark: string;
  readonly messages: readonly ConsumedMessage[];
  /** The last offset the fetch covered, control records (transaction markers) included. */
  lastOffset(): string;
}

export interface BatchContext {
  readonly batch: ConsumedBatch;
  /** Marks messages up to `offset` as processed: the next fetch of the partition starts after it. */
  resolveOffset(offset: string): void;
  /** Tells the group coordinator the member is alive (the handler may run for long). */
  heartbeat(): Promise<void>;
  /** False once the consumer is stopping. */
  isRunning(): boolean;
  /** True once the batch is no longer current: the partition was sought or revoked. */
  isStale(): boolean;
}

export interface ConsumerOptions {
  readonly groupId: string;
  /** Longest a fetch waits for data, ms. */
  readonly maxWaitTimeInMs?: number;
  readonly sessionTimeout?: number;
  readonly heartbeatInterval?: number;
  /** Asked after a crash the client would restart the consumer from itself: whether to. */
  readonly restartOnFailure?: () => Promise<boolean>;
}

/** What a consumer tells, besides its batches. */
export interface ConsumerListeners {
  /** The consumer joined its group (a rebalance); `assignment` maps topics to the partitions it owns. */
  groupJoin?(assignment: Readonly<Record<string, readonly number[]>>): void;
  /** The consumer crashed; `restart`: the client restarts it itself. */
  crash?(error: Error, restart: boolean): void;
  /**
   * After a crash the client retried in place (no new join), the consumer was heard from as the
   * same member with the same assignment: a fetch or a heartbeat succeeded. A client that restarts
   * by joining again tells `groupJoin` instead (kafkajs never tells this).
   */
  resumed?(): void;
  /** The consumer stopped (disconnect). */
  stop?(): void;
  /** A response came from a broker. */
  request?(): void;
  /** A fetch came back (even empty). */
  fetch?(): void;
  /**
   * A fetched batch of nothing but control records (transaction markers) or aborted records, which
   * never reaches `eachBatch`, was stepped over: the offset after it. Never told of a batch
   * `eachBatch` was called with, even one it returned from without reading (fetched before a seek,
   * say): whoever reads counts what `eachBatch` read, and a read started meanwhile would take that
   * batch's end for its own.
   */
  batchEnd?(topic: string, partition: number, nextOffset: bigint): void;
}

export interface RunOptions {
  /**
   * Called with each fetched batch of one partition, one call at a time. Offsets are not committed
   * by the consumer (`commitOffsets` does). With `autoResolve`, a batch that resolves counts as
   * processed; without, only what `resolveOffset` marked does, and the rest is fetched again.
   */
  eachBatch(context: BatchContext): Promise<void>;
  readonly autoResolve: boolean;
}

export interface KafkaConsumer {
  /** Adds listeners; call before `run`. */
  listen(listeners: ConsumerListeners): void;
  connect(): Promise<void>;
  subscribe(subscription: { topic: string; fromBeginning: boolean }): Promise<void>;
  /** Starts fetching; resolves once it has begun (the first join may still be under way). */
  run(options: RunOptions): Promise<void>;
  /** Fetches `partition` from `offset` next. Throws while the client rebuilds its group (see ChangelogReader). */
  seek(target: { topic: string; partition: number; offset: string }): void;
  /** Stops fetching `partitions` (all of the topic's when left out). */
  pause(target: { topic: string; partitions?: readonly number[] }): void;
  resume(target: { topic: string; partitions: readonly number[] }): void;
  commitOffsets(offsets: ReadonlyArray<{ topic: string; partition: number; offset: string }>): Promise<void>;
  disconnect(): Promise<void>;
}

export interface KafkaClient {
  readonly name: KafkaClientName;
  admin(): KafkaAdmin;
  /** An idempotent producer (acks all, one request in flight per broker, so order holds). */
  producer(): KafkaProducer;
  transactionalProducer(transactionalId: string): TransactionalProducer;
  consumer(options: ConsumerOptions): KafkaConsumer;
}

export interface KafkaRetry {
  readonly initialRetryTime: number;
  readonly maxRetryTime: number;
  readonly retries: number;
}

export interface KafkaClientOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  readonly clientId?: string;
  /** Which library; default `kafkajs`. */
  readonly client?: KafkaClientName;
  /** Default `warn`. */
  readonly logLevel?: KafkaLogLevel;
  /** Backoff of failed requests; default the client's own. */
  readonly retry?: KafkaRetry;
}
