import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { KafkaHealthObserver, KafkaHealthView } from '../pipelines/kafkaHealth.js';

/** The Kafka metrics of one instance: `observer` goes to the pipeline, `attach` once it runs. */
export interface KafkaMetrics {
  /** Counts rebalances, crashes, rejoins, restores and resyncs (pass as `healthObserver`). */
  readonly observer: KafkaHealthObserver;
  /** The running pipeline's health, which the gauges read at scrape time (zero before). */
  attach(health: KafkaHealthView): void;
}

/**
 * The Kafka pipeline's health as Prometheus metrics, in `registry` (serve's, or the one of
 * `cellstream kafka`'s health port). Created before the pipeline starts, so that the first join and
 * restore are counted. Names and what to alert on: docs/kafka.md, Operations.
 */
export function registerKafkaMetrics(registry: Registry, groupId: string): KafkaMetrics {
  const registers = [registry];
  let health: KafkaHealthView | undefined;
  new Gauge({
    name: 'cellstream_kafka_consumer_lag',
    help: 'Messages behind the end of each owned input partition, as of its last fetch (before the first: as of its assignment)',
    labelNames: ['partition'],
    registers,
    collect() {
      this.reset();
      if (!health) return;
      const { lag } = health.snapshot(groupId);
      for (const [partition, n] of Object.entries(lag)) this.set({ partition }, n);
    },
  });
  new Gauge({
    name: 'cellstream_kafka_seconds_since_last_commit',
    help: 'Seconds since the last batch committed (-1 before the first)',
    registers,
    collect() {
      this.set(health?.secondsSinceLastCommit() ?? -1);
    },
  });
  new Gauge({
    name: 'cellstream_kafka_ready',
    help: '1 when in the group, partitions restored and consuming (what /readyz answers), else 0',
    registers,
    collect() {
      this.set(!health ? 0 : health.notReadyReason(groupId) === undefined ? 1 : 0);
    },
  });
  new Gauge({
    name: 'cellstream_kafka_stalled',
    help: '1 while no batch has committed for longer than the stall timeout while events wait',
    registers,
    collect() {
      this.set(!health ? 0 : health.stalled() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'cellstream_kafka_group_member',
    help: '1 while the consumer is a member of its group',
    registers,
    collect() {
      this.set(!health ? 0 : health.snapshot(groupId).member ? 1 : 0);
    },
  });
  new Gauge({
    name: 'cellstream_kafka_broker_connected',
    help: '1 when the broker answered the consumer recently (within the session timeout, at least 10 s)',
    registers,
    collect() {
      this.set(!health ? 0 : health.brokerConnected() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'cellstream_kafka_standby_lag',
    help: 'Records each changelog partition followed as a standby is behind its end, as of its last fetch (kafka.standbys)',
    labelNames: ['partition'],
    registers,
    collect() {
      this.reset();
      if (!health) return;
      const { standbyLag } = health.snapshot(groupId);
      for (const [partition, n] of Object.entries(standbyLag)) this.set({ partition }, n);
    },
  });
  const rebalances = new Counter({
    name: 'cellstream_kafka_rebalances_total',
    help: 'Consumer group joins (each rebalance this instance took part in)',
    registers,
  });
  const crashes = new Counter({
    name: 'cellstream_kafka_consumer_crashes_total',
    help: 'Consumer crashes; restarted="true" when kafkajs restarts it itself',
    labelNames: ['restarted'],
    registers,
  });
  const rejoins = new Counter({
    name: 'cellstream_kafka_consumer_rejoins_total',
    help: 'New consumers started after a crash kafkajs does not restart from',
    registers,
  });
  const restores = new Histogram({
    name: 'cellstream_kafka_restore_seconds',
    help: 'Duration of state restores from the changelog (count: restores)',
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers,
  });
  const restoredRecords = new Counter({
    name: 'cellstream_kafka_restored_records_total',
    help: 'Changelog records applied by restores',
    registers,
  });
  const unreadable = new Counter({
    name: 'cellstream_kafka_changelog_unreadable_records_total',
    help: 'Changelog records a restore could not apply (not decodable, or a key that cannot be held); their keys are refused or reset',
    registers,
  });
  const standbyRecords = new Counter({
    name: 'cellstream_kafka_standby_records_total',
    help: 'Changelog records a standby wrote into the local store for partitions not owned (kafka.standbys)',
    registers,
  });
  const resyncs = new Counter({
    name: 'cellstream_kafka_resyncs_total',
    help: 'Partitions whose state and position were re-read from Kafka after a failed batch',
    registers,
  });
  return {
    observer: {
      rebalance: () => rebalances.inc(),
      crash: (restart) => crashes.inc({ restarted: String(restart) }),
      rejoin: () => rejoins.inc(),
      restore: (seconds, records, bad) => {
        restores.observe(seconds);
        restoredRecords.inc(records);
        unreadable.inc(bad);
      },
      resync: () => resyncs.inc(),
      standby: (records) => standbyRecords.inc(records),
    },
    attach(h) {
      health = h;
    },
  };
}
