import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Sources of the gauges that are read when Prometheus scrapes rather than kept up to date. */
export interface GaugeSources {
  /** Keys in the state store. */
  storeKeys(): Promise<number>;
  /** Keys whose state is held in process memory. */
  keysInMemory(): Promise<number>;
  subscribers(): number;
  ingestConnections(): number;
  /** Answer bytes waiting in the socket buffers of all /ingest connections. */
  ingestBufferedBytes?(): number;
  /** Input partitions the Kafka pipeline owns (0 without Kafka). */
  kafkaPartitions?(): number;
}

/**
 * The Prometheus metrics of one `serve` instance, in a registry of its own (several servers in one
 * process, as in tests, do not share counters). Names are listed in docs/configuration.md.
 */
export class ServeMetrics {
  readonly registry = new Registry();
  readonly eventsIn: Counter<'source'>;
  readonly predictionsOut: Counter;
  readonly rejects: Counter<'code'>;
  readonly duplicates: Counter;
  readonly stepSeconds: Histogram;
  readonly eventLatencySeconds: Histogram;
  readonly batchSize: Histogram;
  readonly eventsForwarded: Counter;
  readonly droppedMessages: Counter;
  readonly slowClosed: Counter;
  readonly connectionsRejected: Counter<'reason'>;
  readonly connectionsClosed: Counter<'code'>;

  constructor(sources: GaugeSources) {
    const registers = [this.registry];
    this.eventsIn = new Counter({
      name: 'cellstream_events_in_total',
      help: 'Events received, by source',
      labelNames: ['source'],
      registers,
    });
    this.predictionsOut = new Counter({
      name: 'cellstream_predictions_out_total',
      help: 'Predictions produced by the engine',
      registers,
    });
    this.rejects = new Counter({
      name: 'cellstream_rejects_total',
      help: 'Events not applied, by error code',
      labelNames: ['code'],
      registers,
    });
    this.duplicates = new Counter({
      name: 'cellstream_duplicates_total',
      help: 'Redelivered events recognised by id and not stepped again',
      registers,
    });
    this.stepSeconds = new Histogram({
      name: 'cellstream_step_batch_seconds',
      help: 'Time the engine takes to apply one micro-batch (read state, step, write state)',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.eventLatencySeconds = new Histogram({
      name: 'cellstream_event_latency_seconds',
      help: 'From an event entering the engine to its outcome (batching wait included)',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5],
      registers,
    });
    this.batchSize = new Histogram({
      name: 'cellstream_batch_size',
      help: 'Events per engine micro-batch',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
      registers,
    });
    this.eventsForwarded = new Counter({
      name: 'cellstream_events_forwarded_total',
      help: 'Events received on /ingest and acknowledged by the Kafka input topic (Kafka mode)',
      registers,
    });
    this.droppedMessages = new Counter({
      name: 'cellstream_subscriber_dropped_total',
      help: 'Predictions not sent to a slow subscriber (policy drop)',
      registers,
    });
    this.slowClosed = new Counter({
      name: 'cellstream_subscriber_slow_closed_total',
      help: 'Subscribers closed with 1013 for being too slow (policy close)',
      registers,
    });
    this.connectionsRejected = new Counter({
      name: 'cellstream_connections_rejected_total',
      help: 'WebSocket upgrades refused, by reason (unauthorized, forbidden, origin, not-found, unavailable)',
      labelNames: ['reason'],
      registers,
    });
    this.connectionsClosed = new Counter({
      name: 'cellstream_ws_closed_by_server_total',
      help: 'WebSocket connections the server closed, by close code (1008 rate, 1009 size, 1013 slow)',
      labelNames: ['code'],
      registers,
    });
    new Gauge({
      name: 'cellstream_state_store_keys',
      help: 'Keys in the state store',
      registers,
      async collect() {
        this.set(await sources.storeKeys());
      },
    });
    new Gauge({
      name: 'cellstream_state_keys_in_memory',
      help: 'Keys whose state is held in process memory',
      registers,
      async collect() {
        this.set(await sources.keysInMemory());
      },
    });
    new Gauge({
      name: 'cellstream_subscribers',
      help: 'Open /subscribe connections',
      registers,
      collect() {
        this.set(sources.subscribers());
      },
    });
    new Gauge({
      name: 'cellstream_ingest_connections',
      help: 'Open /ingest connections',
      registers,
      collect() {
        this.set(sources.ingestConnections());
      },
    });
    new Gauge({
      name: 'cellstream_ingest_buffered_bytes',
      help: 'Answer bytes waiting to be written to /ingest clients (bounded per connection by sources.websocket.maxOutboundBytes)',
      registers,
      collect() {
        this.set(sources.ingestBufferedBytes?.() ?? 0);
      },
    });
    new Gauge({
      name: 'cellstream_kafka_partitions',
      help: 'Input topic partitions this instance owns (Kafka mode)',
      registers,
      collect() {
        this.set(sources.kafkaPartitions?.() ?? 0);
      },
    });
  }
}
