import {
  type Admin,
  type Consumer,
  Kafka,
  logLevel,
  type Message,
  Partitioners,
  type Producer,
  type Transaction,
} from 'kafkajs';
import type {
  ConsumerOptions,
  KafkaAdmin,
  KafkaClient,
  KafkaClientOptions,
  KafkaConsumer,
  KafkaLogLevel,
  KafkaProducer,
  KafkaTransaction,
  TopicMessages,
  TransactionalProducer,
} from './adapter.js';
import { protocolErrorType } from './kafkaErrors.js';
import { renewingProducer } from './renewingProducer.js';

const LOG_LEVELS: Record<KafkaLogLevel, logLevel> = {
  nothing: logLevel.NOTHING,
  error: logLevel.ERROR,
  warn: logLevel.WARN,
  info: logLevel.INFO,
  debug: logLevel.DEBUG,
};

/** The kafkajs implementation of cellstream's Kafka adapter. */
export function createKafkajsClient(options: KafkaClientOptions): KafkaClient {
  const kafka = new Kafka({
    clientId: options.clientId ?? 'cellstream',
    brokers: [...options.brokers],
    logLevel: LOG_LEVELS[options.logLevel ?? 'warn'],
    ...(options.retry === undefined ? {} : { retry: { ...options.retry } }),
  });
  return {
    name: 'kafkajs',
    admin: () => kafkajsAdmin(kafka.admin()),
    // A failed send leaves the next one a new idempotent session (see renewingProducer).
    producer: () => renewingProducer(() => kafkajsProducer(kafka)),
    transactionalProducer: (transactionalId) => kafkajsTransactionalProducer(kafka, transactionalId),
    consumer: (consumerOptions) => kafkajsConsumer(kafka, consumerOptions),
  };
}

function toMessages(topicMessages: TopicMessages[]) {
  return topicMessages.map((t) => ({ topic: t.topic, messages: t.messages as Message[] }));
}

// Idempotent, one request in flight (order kept across retries), kafkajs's default partitioner.
const PRODUCER_OPTIONS = {
  idempotent: true,
  maxInFlightRequests: 1,
  createPartitioner: Partitioners.DefaultPartitioner,
} as const;

function kafkajsProducer(kafka: Kafka): KafkaProducer {
  const producer = kafka.producer(PRODUCER_OPTIONS);
  return {
    connect: () => producer.connect(),
    disconnect: () => producer.disconnect(),
    sendBatch: ({ topicMessages }) =>
      producer.sendBatch({ topicMessages: toMessages(topicMessages), acks: -1 }),
  };
}

function kafkajsTransactionalProducer(kafka: Kafka, transactionalId: string): TransactionalProducer {
  const producer: Producer = kafka.producer({ ...PRODUCER_OPTIONS, transactionalId });
  return {
    connect: () => producer.connect(),
    disconnect: () => producer.disconnect(),
    transaction: async () => kafkajsTransaction(await producer.transaction()),
  };
}

function kafkajsTransaction(txn: Transaction): KafkaTransaction {
  return {
    sendBatch: ({ topicMessages }) => txn.sendBatch({ topicMessages: toMessages(topicMessages), acks: -1 }),
    sendOffsets: ({ consumerGroupId, topics }) =>
      txn.sendOffsets({
        consumerGroupId,
        topics: topics.map((t) => ({ topic: t.topic, partitions: t.partitions.map((p) => ({ ...p })) })),
      }),
    commit: () => txn.commit(),
    abort: () => txn.abort(),
  };
}

function kafkajsAdmin(admin: Admin): KafkaAdmin {
  return {
    connect: () => admin.connect(),
    disconnect: () => admin.disconnect(),
    listTopics: () => admin.listTopics(),
    async createTopics(topics) {
      await admin
        .createTopics({
          waitForLeaders: true,
          topics: topics.map((t) => ({ ...t, configEntries: [...t.configEntries] })),
        })
        .catch((err: unknown) => {
          // Another instance created it first; or it was created and kafkajs's wait for its leaders
          // met a broker whose metadata does not know it yet, which ensureTopics's wait outlasts.
          const type = protocolErrorType(err);
          if (type !== 'TOPIC_ALREADY_EXISTS' && type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw err;
        });
    },
    async partitionCounts(topics) {
      const metadata = await admin.fetchTopicMetadata({ topics: [...topics] });
      return new Map(metadata.topics.map((t) => [t.name, t.partitions.length]));
    },
    async topicLeaders(topics) {
      const metadata = await admin.fetchTopicMetadata({ topics: [...topics] });
      return new Map(
        metadata.topics.map((t) => [
          t.name,
          [...t.partitions].sort((a, b) => a.partitionId - b.partitionId).map((p) => p.leader),
        ]),
      );
    },
    fetchTopicOffsets: (topic) => admin.fetchTopicOffsets(topic),
    async fetchCommittedOffsets(groupId, topic, partitions) {
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      const all = committed?.partitions ?? [];
      return partitions === undefined ? all : all.filter((p) => partitions.includes(p.partition));
    },
  };
}

function kafkajsConsumer(kafka: Kafka, options: ConsumerOptions): KafkaConsumer {
  const consumer: Consumer = kafka.consumer({
    groupId: options.groupId,
    ...(options.maxWaitTimeInMs === undefined ? {} : { maxWaitTimeInMs: options.maxWaitTimeInMs }),
    ...(options.sessionTimeout === undefined ? {} : { sessionTimeout: options.sessionTimeout }),
    ...(options.heartbeatInterval === undefined ? {} : { heartbeatInterval: options.heartbeatInterval }),
    readUncommitted: false,
    allowAutoTopicCreation: false,
    ...(options.restartOnFailure === undefined
      ? {}
      : { retry: { restartOnFailure: options.restartOnFailure } }),
  });
  return {
    listen(listeners) {
      const { groupJoin, crash, stop, request, fetch, batchEnd } = listeners;
      // kafkajs emits this synchronously on every join, before fetching for the new generation.
      if (groupJoin) {
        consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => groupJoin(payload.memberAssignment));
      }
      if (crash) consumer.on(consumer.events.CRASH, ({ payload }) => crash(payload.error, payload.restart));
      if (stop) consumer.on(consumer.events.STOP, () => stop());
      if (request) consumer.on(consumer.events.REQUEST, () => request());
      if (fetch) consumer.on(consumer.events.FETCH, () => fetch());
      if (batchEnd) {
        // kafkajs tells the end of every batch, also of one eachBatch passed over; only batches
        // that skipped eachBatch (control or aborted records alone: no messages) are the contract's.
        consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
          if (payload.batchSize === 0)
            batchEnd(payload.topic, payload.partition, BigInt(payload.lastOffset) + 1n);
        });
      }
    },
    connect: () => consumer.connect(),
    subscribe: (subscription) => consumer.subscribe(subscription),
    run: ({ eachBatch, autoResolve }) =>
      consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: autoResolve,
        partitionsConsumedConcurrently: 1,
        eachBatch: ({ batch, resolveOffset, heartbeat, isRunning, isStale }) =>
          eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }),
      }),
    seek: (target) => consumer.seek(target),
    pause: ({ topic, partitions }) =>
      consumer.pause([partitions === undefined ? { topic } : { topic, partitions: [...partitions] }]),
    resume: ({ topic, partitions }) => consumer.resume([{ topic, partitions: [...partitions] }]),
    commitOffsets: (offsets) => consumer.commitOffsets(offsets.map((o) => ({ ...o }))),
    disconnect: () => consumer.disconnect(),
  };
}
