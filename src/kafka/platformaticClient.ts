import type { Admin, ClusterMetadata, Consumer, Producer } from '@platformatic/kafka';
import type {
  BatchContext,
  ConsumedMessage,
  ConsumerListeners,
  ConsumerOptions,
  KafkaAdmin,
  KafkaClient,
  KafkaClientOptions,
  KafkaConsumer,
  KafkaProducer,
  KafkaTransaction,
  MessageHeaders,
  OffsetsOfGroup,
  RunOptions,
  SentRecord,
  TopicMessages,
  TransactionalProducer,
} from './adapter.js';
import { protocolErrorType } from './kafkaErrors.js';
import type { LoadedPlatformaticLibrary, PlatformaticLibrary } from './platformaticLibrary.js';
import { renewingProducer } from './renewingProducer.js';

/** Record-batch attribute bits (Kafka's record batch format v2). */
const IS_TRANSACTIONAL = 1 << 4;
const IS_CONTROL = 1 << 5;

type Transaction = Awaited<ReturnType<Producer['beginTransaction']>>;

interface Common {
  /** The library's classes and constants (1.35 or 2.x, by Node version: platformaticLibrary.ts). */
  readonly lib: PlatformaticLibrary;
  /** Wraps every client made (1.35's broker guard; nothing on 2.x): LoadedPlatformaticLibrary. */
  readonly guard: LoadedPlatformaticLibrary['guard'];
  readonly clientId: string;
  readonly bootstrapBrokers: string[];
  readonly retries: number;
  readonly retryDelay: number;
}

/**
 * The @platformatic/kafka implementation of cellstream's Kafka adapter. Its consumer keeps the
 * library's group membership (join, sync, heartbeats on a timer of its own, rejoin on a rebalance)
 * but fetches with a loop of its own rather than the library's message stream: batches of one
 * partition handed over one at a time, per-partition pause and seek, offsets moved only by the
 * handler, and records of aborted transactions left out (the stream does not filter them).
 */
export function createPlatformaticClient(
  options: KafkaClientOptions,
  { library, guard }: LoadedPlatformaticLibrary,
): KafkaClient {
  const common: Common = {
    lib: library,
    guard,
    clientId: options.clientId ?? 'cellstream',
    bootstrapBrokers: [...options.brokers],
    retries: options.retry?.retries ?? 8,
    retryDelay: options.retry?.initialRetryTime ?? 300,
  };
  return {
    name: 'platformatic',
    admin: () => platformaticAdmin(common),
    // A failed send leaves the next one a new idempotent session (see renewingProducer).
    producer: () => renewingProducer(() => platformaticProducer(common)),
    transactionalProducer: (transactionalId) => platformaticTransactionalProducer(common, transactionalId),
    consumer: (consumerOptions) => new PlatformaticConsumer(common, consumerOptions),
  };
}

function toBuffer(v: string | Buffer | null | undefined): Buffer | undefined {
  if (v === null || v === undefined) return undefined;
  return typeof v === 'string' ? Buffer.from(v) : v;
}

/** Our messages as the library's (Buffers throughout; a partition left out is murmur2 of the key, as kafkajs and Java pick it). */
function toLibraryMessages(topicMessages: readonly TopicMessages[]) {
  const out = [];
  for (const { topic, messages } of topicMessages) {
    for (const m of messages) {
      const headers = new Map<Buffer, Buffer>();
      for (const [k, v] of Object.entries(m.headers ?? {})) headers.set(Buffer.from(k), toBuffer(v)!);
      out.push({
        topic,
        key: toBuffer(m.key),
        value: toBuffer(m.value),
        headers,
        ...(m.partition === undefined ? {} : { partition: m.partition }),
      });
    }
  }
  return out;
}

function sentRecords(result: {
  offsets?: Array<{ topic: string; partition: number; offset: bigint }>;
}): SentRecord[] {
  return (result.offsets ?? []).map((o) => ({
    topicName: o.topic,
    partition: o.partition,
    baseOffset: o.offset.toString(),
  }));
}

function platformaticProducer({ lib, guard, ...common }: Common): KafkaProducer {
  const { ProduceAcks } = lib;
  const producer = guard(
    new lib.Producer({
      ...common,
      idempotent: true,
      acks: ProduceAcks.ALL,
      partitioner: lib.compatibilityPartitioner,
    }),
  );
  return {
    // The library connects on first use; asking for the producer id checks the broker answers.
    connect: async () => {
      await producer.initIdempotentProducer({});
    },
    disconnect: () => producer.close(),
    sendBatch: async ({ topicMessages }) =>
      sentRecords(await producer.send({ messages: toLibraryMessages(topicMessages), acks: ProduceAcks.ALL })),
  };
}

function platformaticTransactionalProducer(
  { lib, guard, ...common }: Common,
  transactionalId: string,
): TransactionalProducer {
  const create = () =>
    guard(
      new lib.Producer({
        ...common,
        transactionalId,
        idempotent: true,
        acks: lib.ProduceAcks.ALL,
        partitioner: lib.compatibilityPartitioner,
      }),
    );
  let producer = create();
  // A send of the last transaction failed: the next transaction starts on a new producer session.
  // 2.x counts a partition's sequence numbers on before the broker answers and neither rewinds
  // them after a refusal nor asks for a new producer id between transactions, so every later send
  // to that partition was refused (OUT_OF_ORDER_SEQUENCE_NUMBER) for as long as the client lived:
  // one dead letter too large for its topic stalled its partition for good. 1.35 counts on only
  // after an acknowledged send; a new session costs it one InitProducerId.
  let failed = false;
  return {
    connect: async () => {},
    disconnect: () => producer.close(),
    // The first one registers the transactional id (InitProducerId): that fences a previous holder.
    // It must ask as a new producer, producer id and epoch -1: the library's default asks for id 0
    // epoch 0, which the coordinator takes as a claim to be producer 0 and answers PRODUCER_FENCED
    // for any id another producer already registered, so a partition taken over from another
    // instance never got a transaction (multi-instance exactly-once stalled on this client).
    transaction: async () => {
      if (failed) {
        failed = false;
        const old = producer;
        producer = create();
        // Its transaction has ended (committed or aborted) before the next one is asked for.
        await old.close().catch(() => {});
      }
      const txn = await producer.beginTransaction({ producerId: -1n, producerEpoch: -1 });
      return platformaticTransaction(lib, txn, () => {
        failed = true;
      });
    },
  };
}

function platformaticTransaction(
  lib: PlatformaticLibrary,
  txn: Transaction,
  onSendFailed: () => void,
): KafkaTransaction {
  const { ProduceAcks } = lib;
  // Kafka refuses to end a transaction nothing was added to; such a one is only dropped locally.
  let touched = false;
  return {
    async sendBatch({ topicMessages }) {
      touched = true;
      try {
        return sentRecords(
          await txn.send({ messages: toLibraryMessages(topicMessages), acks: ProduceAcks.ALL }),
        );
      } catch (err) {
        onSendFailed();
        throw err;
      }
    },
    async sendOffsets(offsets: OffsetsOfGroup) {
      const member = offsets.consumer instanceof PlatformaticConsumer ? offsets.consumer.member() : undefined;
      if (!member || member.groupId !== offsets.consumerGroupId) {
        throw new Error(
          `the offsets of group '${offsets.consumerGroupId}' need that group's consumer (its generation and member id go with them)`,
        );
      }
      touched = true;
      await txn.addConsumer(member.consumer);
      for (const { topic, partitions } of offsets.topics) {
        for (const { partition, offset } of partitions) {
          // The library commits the offset after the message's: the message is the last one consumed.
          await txn.addOffset({
            topic,
            partition,
            offset: BigInt(offset) - 1n,
            key: undefined,
            value: undefined,
            headers: new Map(),
            timestamp: 0n,
            metadata: {
              consumer: {
                groupId: member.groupId,
                generationId: member.generationId,
                memberId: member.memberId,
                coordinatorId: member.coordinatorId,
              },
            },
            commit: () => {},
          } as unknown as Parameters<Transaction['addOffset']>[0]);
        }
      }
    },
    commit: () => (touched ? txn.commit() : txn.cancel()),
    abort: () => (touched ? txn.abort() : txn.cancel()),
  };
}

function platformaticAdmin({ lib, guard, ...common }: Common): KafkaAdmin {
  const { FetchIsolationLevels, ListOffsetTimestamps } = lib;
  let admin: Admin | undefined;
  const open = (): Admin => {
    admin ??= guard(new lib.Admin({ ...common }));
    return admin;
  };
  const metadata = (topics: readonly string[], forceUpdate = false): Promise<ClusterMetadata> =>
    open().metadata({ topics: [...topics], forceUpdate });
  return {
    connect: async () => {
      await open().listTopics();
    },
    disconnect: async () => {
      const a = admin;
      admin = undefined;
      await a?.close();
    },
    listTopics: () => open().listTopics(),
    async createTopics(topics) {
      for (const t of topics) {
        try {
          await open().createTopics({
            topics: [t.topic],
            partitions: t.numPartitions,
            replicas: t.replicationFactor,
            configs: t.configEntries.map((c) => ({ name: c.name, value: c.value })),
          });
        } catch (err) {
          // Another instance created it first.
          if (protocolErrorType(err) !== 'TOPIC_ALREADY_EXISTS') throw err;
        }
      }
    },
    async partitionCounts(topics) {
      const m = await metadata(topics, true);
      return new Map(
        [...m.topics].filter(([n]) => topics.includes(n)).map(([n, t]) => [n, t.partitionsCount]),
      );
    },
    async topicLeaders(topics) {
      const m = await metadata(topics, true);
      return new Map(
        [...m.topics]
          .filter(([n]) => topics.includes(n))
          .map(([n, t]) => [
            n,
            Array.from({ length: t.partitionsCount }, (_, i) => t.partitions[i]?.leader ?? -1),
          ]),
      );
    },
    async fetchTopicOffsets(topic) {
      const count = (await metadata([topic])).topics.get(topic)?.partitionsCount ?? 0;
      const partitions = Array.from({ length: count }, (_, i) => i);
      const list = async (timestamp: bigint) =>
        (
          await open().listOffsets({
            topics: [{ name: topic, partitions: partitions.map((p) => ({ partitionIndex: p, timestamp })) }],
            isolationLevel: FetchIsolationLevels.READ_COMMITTED,
          })
        ).flatMap((t) => t.partitions);
      const low = new Map(
        (await list(ListOffsetTimestamps.EARLIEST)).map((p) => [p.partitionIndex, p.offset]),
      );
      const high = new Map(
        (await list(ListOffsetTimestamps.LATEST)).map((p) => [p.partitionIndex, p.offset]),
      );
      return partitions.map((p) => ({
        partition: p,
        low: String(low.get(p) ?? 0n),
        high: String(high.get(p) ?? 0n),
      }));
    },
    async fetchCommittedOffsets(groupId, topic, only) {
      // Only the partitions asked: a stable read waits while any of them has offsets pending in a
      // transaction, and other members' partitions nearly always have.
      const partitionIndexes =
        only === undefined
          ? Array.from(
              { length: (await metadata([topic])).topics.get(topic)?.partitionsCount ?? 0 },
              (_, i) => i,
            )
          : [...only];
      const [group] = await open().listConsumerGroupOffsets({
        groups: [
          {
            groupId,
            topics: [{ name: topic, partitionIndexes }],
          },
        ],
        requireStable: true,
      });
      const partitions = group?.topics.find((t) => t.name === topic)?.partitions ?? [];
      return partitions.map((p) => ({ partition: p.partitionIndex, offset: p.committedOffset.toString() }));
    },
  };
}

/** A partition's batch as fetched, before the handler. */
interface Fetched {
  readonly partition: number;
  readonly messages: ConsumedMessage[];
  readonly highWatermark: bigint;
  /** One past the last offset the fetch covered (control records included). */
  readonly next: bigint;
  /** The partition's epoch (seeks and rebalances) when it was fetched. */
  readonly epoch: number;
}

class PlatformaticConsumer implements KafkaConsumer {
  private readonly lib: PlatformaticLibrary;
  private readonly consumer: Consumer;
  private readonly options: ConsumerOptions;
  private readonly listeners: ConsumerListeners[] = [];
  private topic: string | undefined;
  private fromBeginning = true;
  /** Partitions owned since the latest join. */
  private assigned: readonly number[] = [];
  /** Next offset to fetch, by partition; missing: ask the group's committed offset. */
  private readonly positions = new Map<number, bigint>();
  /** Bumped by a seek or a rebalance: a batch fetched before is stale. */
  private readonly epochs = new Map<number, number>();
  private pausedAll = false;
  private readonly paused = new Set<number>();
  private readonly resumed = new Set<number>();
  private running = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  /** Wakes the fetch loop from an idle wait (a resume, a seek, a join). */
  private wake: (() => void) | undefined;
  private generation = 0;
  /** The member id of the first join; a join under another one means the membership was lost. */
  private memberId: string | undefined;
  private lostMembership = false;
  /** A crash was told and no join or `resumed` has followed yet. */
  private retryingInPlace = false;

  constructor({ lib, guard, ...common }: Common, options: ConsumerOptions) {
    this.lib = lib;
    this.options = options;
    this.consumer = guard(
      new lib.Consumer({
        ...common,
        groupId: options.groupId,
        ...(options.sessionTimeout === undefined ? {} : { sessionTimeout: options.sessionTimeout }),
        ...(options.heartbeatInterval === undefined ? {} : { heartbeatInterval: options.heartbeatInterval }),
        ...(options.sessionTimeout === undefined ? {} : { rebalanceTimeout: options.sessionTimeout }),
        autocommit: false,
        isolationLevel: lib.FetchIsolationLevels.READ_COMMITTED,
      }),
    );
    this.consumer.on('consumer:group:join', (payload) => {
      const previous = this.memberId;
      this.memberId = payload.memberId;
      if (previous !== undefined && previous !== payload.memberId) {
        // The coordinator had dropped the member (its session expired, e.g. the event loop
        // blocked) and the library joined again as a new one. kafkajs crashes there without a
        // restart; so does this adapter, so that `kafka.onConsumerCrash` decides alike.
        this.lostMembership = true;
        this.running = false;
        this.wake?.();
        const error = new Error(
          `the group coordinator no longer knew member ${previous} of group '${options.groupId}' (its session expired)`,
        );
        this.emit((l) => l.crash?.(error, false));
        return;
      }
      const topic = this.topic;
      const mine = payload.assignments?.find((a) => a.topic === topic)?.partitions ?? [];
      this.assigned = [...mine].sort((a, b) => a - b);
      this.generation++;
      // The join tells the membership itself.
      this.retryingInPlace = false;
      // Another member may have moved any partition on meanwhile: start each from the group's commit.
      this.positions.clear();
      for (const p of [...this.epochs.keys()]) this.bump(p);
      this.emit((l) => l.groupJoin?.(topic === undefined ? {} : { [topic]: this.assigned }));
      this.wake?.();
    });
    this.consumer.on('consumer:heartbeat:end', () => {
      this.emit((l) => l.request?.());
      this.heardAfterCrash();
    });
    this.consumer.on('error', (error: Error) => this.crashInPlace(error));
  }

  /**
   * A failure this client retries in place: the consumer stays in the group as the same member with
   * the same assignment, so no join follows to say it is a member again; `heardAfterCrash` does.
   */
  private crashInPlace(error: Error): void {
    this.retryingInPlace = true;
    this.emit((l) => l.crash?.(error, true));
  }

  /** A fetch or heartbeat succeeded: after a crash retried in place, the member is back. */
  private heardAfterCrash(): void {
    // Not after a crash the fetch loop gave up on (`running` false): that one is not retried.
    if (!this.retryingInPlace || !this.running || this.stopped || this.lostMembership) return;
    // A failed heartbeat or rejoin leaves the library's membership inactive until it joins again
    // (which tells `groupJoin`): a fetch meanwhile shows the broker, not the membership.
    if (this.consumer.memberId === null || !this.consumer.isActive()) return;
    this.retryingInPlace = false;
    this.emit((l) => l.resumed?.());
  }

  /** The group membership a transaction's offsets go with (KIP-447). */
  member() {
    return {
      consumer: this.consumer,
      groupId: this.consumer.groupId,
      generationId: this.consumer.generationId,
      memberId: this.consumer.memberId ?? '',
      coordinatorId: this.consumer.coordinatorId ?? -1,
    };
  }

  listen(listeners: ConsumerListeners): void {
    this.listeners.push(listeners);
  }

  private emit(call: (l: ConsumerListeners) => void): void {
    for (const l of this.listeners) call(l);
  }

  private bump(partition: number): void {
    this.epochs.set(partition, (this.epochs.get(partition) ?? 0) + 1);
  }

  async connect(): Promise<void> {
    // Connecting is lazy in the library: a metadata request shows whether a broker answers.
    await this.consumer.metadata({ topics: [] });
  }

  async subscribe({ topic, fromBeginning }: { topic: string; fromBeginning: boolean }): Promise<void> {
    this.topic = topic;
    this.fromBeginning = fromBeginning;
  }

  async run(options: RunOptions): Promise<void> {
    const topic = this.topic;
    if (topic === undefined) throw new Error('subscribe before run');
    this.running = true;
    this.consumer.topics.track(topic);
    this.loop = this.fetchLoop(topic, options).catch((err: Error) => {
      this.running = false;
      if (!this.stopped) this.emit((l) => l.crash?.(err, false));
    });
  }

  private async fetchLoop(topic: string, run: RunOptions): Promise<void> {
    let failures = 0;
    while (!this.stopped && !this.lostMembership) {
      try {
        if (this.consumer.memberId === null || !this.consumer.isActive()) await this.consumer.joinGroup({});
        if (this.stopped) return;
        const fetched = await this.fetchOnce(topic);
        failures = 0;
        for (const f of fetched) {
          if (this.stopped) return;
          await this.handle(topic, f, run);
        }
      } catch (err) {
        if (this.stopped || this.lostMembership) return;
        failures++;
        const retry = this.options.restartOnFailure ? await this.options.restartOnFailure() : true;
        if (!retry) throw err;
        // A failed handler or fetch: what was not resolved is fetched again, after a backoff.
        this.crashInPlace(err as Error);
        if (failures > 20) throw err;
        await this.idle(Math.min(300 * 2 ** (failures - 1), 5000));
      }
    }
  }

  /** Waits up to `ms`, or until woken (a resume, a seek, a join). */
  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  private isPaused(p: number): boolean {
    return this.paused.has(p) || (this.pausedAll && !this.resumed.has(p));
  }

  private async fetchOnce(topic: string): Promise<Fetched[]> {
    const maxWait = this.options.maxWaitTimeInMs ?? 5000;
    const partitions = this.assigned.filter((p) => !this.isPaused(p));
    if (partitions.length === 0) {
      await this.idle(maxWait);
      return [];
    }
    await this.resolvePositions(topic, partitions);
    const metadata = await this.consumer.metadata({ topics: [topic] });
    const info = metadata.topics.get(topic);
    if (!info) throw new Error(`Kafka topic '${topic}' does not exist`);
    const byLeader = new Map<number, number[]>();
    for (const p of partitions) {
      const leader = info.partitions[p]?.leader ?? -1;
      if (leader < 0) continue;
      byLeader.set(leader, [...(byLeader.get(leader) ?? []), p]);
    }
    // A join while the positions or the metadata were read cleared the positions (and may have
    // moved the partitions): come round again with the new assignment. Fetching anyway sent no
    // offset, which the library failed to encode (`Cannot mix BigInt and other types`) and
    // retried to no avail, a failed fetch counted as a crash after a mere rebalance.
    if (partitions.some((p) => !this.positions.has(p))) return [];
    const epochs = new Map(partitions.map((p) => [p, this.epochs.get(p) ?? 0]));
    const requested = new Map(partitions.map((p) => [p, this.positions.get(p)!]));
    const responses = await Promise.all(
      [...byLeader].map(([node, ps]) =>
        this.consumer.fetch({
          node,
          maxWaitTime: maxWait,
          minBytes: 1,
          maxBytes: 10 * 1024 * 1024,
          isolationLevel: this.lib.FetchIsolationLevels.READ_COMMITTED,
          topics: [
            {
              topicId: info.id,
              partitions: ps.map((p) => ({
                partition: p,
                fetchOffset: requested.get(p)!,
                partitionMaxBytes: 1024 * 1024,
                currentLeaderEpoch: info.partitions[p].leaderEpoch,
                lastFetchedEpoch: -1,
              })),
            },
          ],
        }),
      ),
    );
    this.emit((l) => l.fetch?.());
    this.emit((l) => l.request?.());
    this.heardAfterCrash();
    const out: Fetched[] = [];
    for (const response of responses) {
      for (const t of response.responses) {
        for (const part of t.partitions) {
          const p = part.partitionIndex;
          const from = requested.get(p);
          if (from === undefined) continue;
          if (part.errorCode !== 0) {
            // OFFSET_OUT_OF_RANGE: the position fell out of the log; start over as a new member would.
            if (part.errorCode === 1) this.positions.delete(p);
            continue;
          }
          const decoded = decodeBatches(part, from);
          if (decoded.next <= from) continue;
          out.push({
            partition: p,
            messages: decoded.messages,
            highWatermark: part.highWatermark,
            next: decoded.next,
            epoch: epochs.get(p)!,
          });
        }
      }
    }
    return out;
  }

  /** Positions of partitions without one: the group's committed offset, else the log's start (or end). */
  private async resolvePositions(topic: string, partitions: readonly number[]): Promise<void> {
    const missing = partitions.filter((p) => !this.positions.has(p));
    if (missing.length === 0) return;
    const generation = this.generation;
    const committed = await this.consumer.listCommittedOffsets({ topics: [{ topic, partitions: missing }] });
    const { FetchIsolationLevels, ListOffsetTimestamps } = this.lib;
    const reset = await this.consumer.listOffsets({
      topics: [topic],
      partitions: { [topic]: missing },
      timestamp: this.fromBeginning ? ListOffsetTimestamps.EARLIEST : ListOffsetTimestamps.LATEST,
      isolationLevel: FetchIsolationLevels.READ_COMMITTED,
    });
    // A rebalance meanwhile cleared the positions: these answers may be stale.
    if (generation !== this.generation) return;
    const done = committed.get(topic) ?? [];
    const start = reset.get(topic) ?? [];
    for (const p of missing) {
      if (this.positions.has(p)) continue;
      const c = done[p];
      this.positions.set(p, c !== undefined && c >= 0n ? c : (start[p] ?? 0n));
    }
  }

  private async handle(topic: string, f: Fetched, run: RunOptions): Promise<void> {
    const p = f.partition;
    const current = () => (this.epochs.get(p) ?? 0) === f.epoch && this.assigned.includes(p);
    if (!current() || this.isPaused(p)) return;
    if (f.messages.length === 0) {
      // Control records only (transaction markers): step over them.
      this.positions.set(p, f.next);
      this.emit((l) => l.batchEnd?.(topic, p, f.next));
      return;
    }
    let resolved: bigint | undefined;
    const last = f.messages[f.messages.length - 1].offset;
    const context: BatchContext = {
      batch: {
        topic,
        partition: p,
        highWatermark: f.highWatermark.toString(),
        messages: f.messages,
        lastOffset: () => (f.next - 1n).toString(),
      },
      resolveOffset: (offset) => {
        resolved = BigInt(offset);
      },
      // The library heartbeats on a timer of its own, whatever the handler does.
      heartbeat: async () => {},
      isRunning: () => this.running && !this.stopped,
      isStale: () => !current(),
    };
    try {
      await run.eachBatch(context);
      if (run.autoResolve) resolved = BigInt(last);
    } finally {
      if (current() && resolved !== undefined) {
        // Past the trailing control records too, once every message is done.
        this.positions.set(p, resolved === BigInt(last) ? f.next : resolved + 1n);
      }
    }
  }

  seek({ partition, offset }: { topic: string; partition: number; offset: string }): void {
    this.positions.set(partition, BigInt(offset));
    this.bump(partition);
    this.wake?.();
  }

  pause({ partitions }: { topic: string; partitions?: readonly number[] }): void {
    if (partitions === undefined) {
      this.pausedAll = true;
      this.resumed.clear();
      this.paused.clear();
    } else {
      for (const p of partitions) {
        this.paused.add(p);
        this.resumed.delete(p);
      }
    }
  }

  resume({ partitions }: { topic: string; partitions: readonly number[] }): void {
    for (const p of partitions) {
      this.paused.delete(p);
      if (this.pausedAll) this.resumed.add(p);
    }
    this.wake?.();
  }

  async commitOffsets(
    offsets: ReadonlyArray<{ topic: string; partition: number; offset: string }>,
  ): Promise<void> {
    await this.consumer.commit({
      offsets: offsets.map((o) => ({
        topic: o.topic,
        partition: o.partition,
        offset: BigInt(o.offset),
        leaderEpoch: -1,
      })),
    });
  }

  async disconnect(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.running = false;
    this.wake?.();
    await this.loop;
    await this.consumer.close().catch(() => {});
    this.emit((l) => l.stop?.());
  }
}

/**
 * A fetched partition's records, from `from` on, without control records and without records of
 * transactions the broker lists as aborted (read_committed is the client's to apply to records
 * below the last stable offset); `next` is one past the last offset covered.
 */
function decodeBatches(
  part: {
    // Null in 2.x when there are none.
    abortedTransactions: Array<{ producerId: bigint; firstOffset: bigint }> | null;
    records?: Array<{
      firstOffset: bigint;
      lastOffsetDelta: number;
      attributes: number;
      producerId: bigint;
      firstTimestamp: bigint;
      records: Array<{
        offsetDelta: number;
        timestampDelta: bigint;
        key: Buffer | null;
        value: Buffer | null;
        headers: Array<[Buffer | null, Buffer | null]>;
      }>;
    }> | null;
  },
  from: bigint,
): { messages: ConsumedMessage[]; next: bigint } {
  const messages: ConsumedMessage[] = [];
  let next = from;
  const pending = [...(part.abortedTransactions ?? [])].sort((a, b) =>
    a.firstOffset < b.firstOffset ? -1 : 1,
  );
  const aborted = new Set<bigint>();
  for (const batch of part.records ?? []) {
    const lastOffset = batch.firstOffset + BigInt(batch.lastOffsetDelta);
    while (pending.length > 0 && pending[0].firstOffset <= lastOffset)
      aborted.add(pending.shift()!.producerId);
    if (lastOffset + 1n > next) next = lastOffset + 1n;
    if (batch.attributes & IS_CONTROL) {
      // The marker that ends an aborted transaction: that producer's later records count again.
      aborted.delete(batch.producerId);
      continue;
    }
    if (batch.attributes & IS_TRANSACTIONAL && aborted.has(batch.producerId)) continue;
    for (const r of batch.records) {
      const offset = batch.firstOffset + BigInt(r.offsetDelta);
      if (offset < from) continue;
      messages.push({
        key: r.key ?? null,
        value: r.value ?? null,
        offset: offset.toString(),
        headers: headersOf(r.headers),
        timestamp: (batch.firstTimestamp + r.timestampDelta).toString(),
      });
    }
  }
  return { messages, next };
}

/** A record's headers as kafkajs gives them: a repeated name keeps each value, in order. */
function headersOf(headers: ReadonlyArray<[Buffer | null, Buffer | null]>): MessageHeaders {
  const out: Record<string, Buffer | Buffer[]> = {};
  for (const [name, value] of headers) {
    if (name === null || value === null) continue;
    const key = name.toString('utf8');
    const seen = out[key];
    out[key] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return out;
}
