import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, collectDefaultMetrics, Registry } from 'prom-client';
import type { KafkaHealthSnapshot } from '../pipelines/kafkaHealth.js';
import type { KafkaBatchReport } from '../pipelines/kafkaPipeline.js';
import { type KafkaMetrics, registerKafkaMetrics } from './kafkaMetrics.js';

/** Where `cellstream kafka` serves its health endpoints, unless told otherwise. */
export const HEALTH_SERVER_DEFAULTS = { host: '127.0.0.1', port: 8081 } as const;

export interface HealthServerOptions {
  readonly host: string;
  /** 0 for any free port. */
  readonly port: number;
  readonly groupId: string;
}

/**
 * The HTTP side of `cellstream kafka`: `/healthz` (the process lives), `/readyz` (in the group,
 * partitions restored, consuming; 503 with the reason otherwise), `/metrics` (Prometheus) and
 * `/v1/kafka` (the health as JSON). It listens before the pipeline starts, so probes answer during
 * start-up (`/readyz` 503 until the pipeline reports in).
 */
export class HealthServer {
  readonly registry = new Registry();
  readonly kafkaMetrics: KafkaMetrics;
  private readonly server: Server;
  private readonly eventsIn: Counter;
  private readonly predictionsOut: Counter;
  private source: { notReadyReason(): string | undefined; snapshot(): KafkaHealthSnapshot } | undefined;
  private closing = false;

  private constructor(
    private readonly options: HealthServerOptions,
    server: Server,
  ) {
    this.server = server;
    collectDefaultMetrics({ register: this.registry, prefix: 'cellstream_' });
    this.kafkaMetrics = registerKafkaMetrics(this.registry, options.groupId);
    this.eventsIn = new Counter({
      name: 'cellstream_events_in_total',
      help: 'Events received from the Kafka input topic (poison included)',
      registers: [this.registry],
    });
    this.predictionsOut = new Counter({
      name: 'cellstream_predictions_out_total',
      help: 'Predictions sent to the output topic',
      registers: [this.registry],
    });
  }

  /** Binds `host:port`; fails (EADDRINUSE, …) before anything else starts. */
  static async listen(options: HealthServerOptions): Promise<HealthServer> {
    let self: HealthServer | undefined;
    const server = createServer((req, res) => {
      self!.handle(req.url ?? '/', req.method ?? 'GET').then(
        ({ status, type, body }) => {
          res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
          res.end(req.method === 'HEAD' ? undefined : body);
        },
        (err: unknown) => {
          res.writeHead(500, { 'Content-Type': 'text/plain' });
          res.end(String(err));
        },
      );
    });
    self = new HealthServer(options, server);
    server.listen(options.port, options.host);
    await once(server, 'listening');
    return self;
  }

  /** `http://host:port`, with the real port. */
  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `http://${host}:${port}`;
  }

  /** The running pipeline's health, from now on what `/readyz` and the gauges answer. */
  attach(source: { notReadyReason(): string | undefined; snapshot(): KafkaHealthSnapshot }): void {
    this.source = source;
  }

  /** Counts a committed batch. */
  batch(report: KafkaBatchReport): void {
    this.eventsIn.inc(report.events);
    this.predictionsOut.inc(report.predictions);
  }

  /** `/readyz` answers 503 from now on (shutting down). */
  shuttingDown(): void {
    this.closing = true;
  }

  async close(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(url: string, method: string): Promise<{ status: number; type: string; body: string }> {
    const path = new URL(url, 'http://localhost').pathname;
    const json = (status: number, body: unknown) => ({
      status,
      type: 'application/json; charset=utf-8',
      body: JSON.stringify(body),
    });
    if (method !== 'GET' && method !== 'HEAD')
      return json(405, { error: { code: 'METHOD_NOT_ALLOWED', reason: `${method} is not supported` } });
    if (path === '/healthz') return json(200, { status: 'ok' });
    if (path === '/readyz') {
      const reason = this.closing
        ? 'shutting down'
        : this.source
          ? this.source.notReadyReason()
          : 'starting: joining the Kafka consumer group and restoring state';
      return reason === undefined
        ? json(200, { status: 'ready' })
        : json(503, { status: 'not ready', reason });
    }
    if (path === '/metrics')
      return { status: 200, type: this.registry.contentType, body: await this.registry.metrics() };
    if (path === '/v1/kafka') return json(200, this.source?.snapshot() ?? null);
    return json(404, { error: { code: 'NOT_FOUND', reason: `no route ${path}` } });
  }
}
