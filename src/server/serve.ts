import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { eventLimitsOf } from '../config/eventLimits.js';
import type { Config } from '../config/schema.js';
import type { Prediction } from '../events/types.js';
import { loadModel } from '../formats/load.js';
import { outputSize, stateSize } from '../model/index.js';
import { loadNative } from '../model/kernels/index.js';
import type { Model } from '../model/types.js';
import { instanceStore } from '../pipelines/kafkaWorkers.js';
import { CachedStore } from '../state/cachedStore.js';
import { unreadableMessage } from '../state/changelogStore.js';
import { LmdbStore } from '../state/lmdbStore.js';
import { MemoryStateStore } from '../state/memoryStore.js';
import type { StateStore } from '../state/types.js';
import { checkExposure, TokenTable } from './auth.js';
import { ConnectionLimits } from './connectionLimits.js';
import { startDemoFeed } from './demoFeed.js';
import { HostAllowlist } from './hostAllowlist.js';
import { createRequestListener } from './http.js';
import type { IngestTarget } from './ingestTarget.js';
import { registerKafkaMetrics } from './kafkaMetrics.js';
import { type KafkaMode, startKafkaMode } from './kafkaMode.js';
import { LastPredictions } from './lastPredictions.js';
import { LiveStats } from './liveStats.js';
import type { Logger } from './logger.js';
import { ServeMetrics } from './metrics.js';
import { EnginePipeline, type PipelineHooks } from './pipeline.js';
import {
  modelEntries,
  type RolloutEngine,
  refuseModelNamespaces,
  startRolloutEngine,
} from './rolloutEngine.js';
import { DashboardFiles } from './staticFiles.js';
import { stepperOptionsOf } from './stepperOptions.js';
import { createUpgradeHandler, type SocketRoute } from './upgrade.js';
import { CLOSE, IngestConnection } from './wsIngest.js';
import { filterFromQuery, type PredictionSource, SubscriptionHub } from './wsSubscribe.js';

export interface ServeOptions {
  readonly logger: Logger;
  /** Where `env` tokens are read from. Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
}

/** A running `serve`: its address and a graceful `close`. The rest is exposed for tests and benches. */
export interface RunningServer {
  /** `http://host:port`, the port being the real one when 0 was configured. */
  readonly url: string;
  readonly port: number;
  readonly model: Model;
  /** The state store; with Kafka, the Kafka pipeline's (LMDB backed by the changelog). */
  readonly store: StateStore;
  /** The local engine; absent with Kafka, where the Kafka pipeline steps every key. */
  readonly pipeline: EnginePipeline | undefined;
  /** The Kafka side, when `kafka` is configured. */
  readonly kafka: KafkaMode | undefined;
  /** Several models (shadows, promote and roll back), when configured; absent with one model. */
  readonly rollout: RolloutEngine | undefined;
  readonly subscriptions: SubscriptionHub;
  readonly metrics: ServeMetrics;
  /**
   * Graceful shutdown: refuses new connections and stops reading ingest sockets, answers every
   * event already read (applied, or with Kafka: acknowledged by the input topic), closes the ingest
   * sockets (1001), stops the engine (with Kafka: stops fetching, finishes the batch in flight,
   * commits, leaves the group) and closes the store, then closes the subscriber sockets, which get
   * every prediction up to the end. Safe to call twice.
   */
  close(): Promise<void>;
}

/**
 * Starts `cellstream serve`: binds the HTTP server first (so `/healthz` answers while the model
 * loads), then loads the model and opens the state store, and only then reports ready and accepts
 * WebSocket connections.
 */
export async function startServer(config: Config, options: ServeOptions): Promise<RunningServer> {
  const log = options.logger;
  checkExposure(config);
  const tokens = TokenTable.fromConfig(config.auth.tokens, options.env ?? process.env);

  let state: 'starting' | 'ready' | 'closing' = 'starting';
  let store: StateStore | undefined;
  let pipeline: EnginePipeline | undefined;
  let kafka: KafkaMode | undefined;
  let rollout: RolloutEngine | undefined;
  /** Where ingested events go: `pipeline`, or with Kafka the input topic. */
  let target: IngestTarget | undefined;
  const subscriptions = new SubscriptionHub({
    maxBufferedBytes: config.sinks.websocket.maxBufferedBytes,
    onSlow: config.sinks.websocket.onSlow,
    onDropped: (n) => {
      metrics.droppedMessages.inc(n);
      dropped += n;
    },
    onSlowClosed: () => {
      metrics.slowClosed.inc();
      metrics.connectionsClosed.inc({ code: CLOSE.tryAgainLater });
    },
  });
  const ingestConnections = new Set<IngestConnection>();
  let dropped = 0;
  const metrics = new ServeMetrics({
    storeKeys: async () => (store && state !== 'closing' ? store.size() : 0),
    keysInMemory: async () => keysInMemory(store, state),
    subscribers: () => subscriptions.size,
    ingestConnections: () => ingestConnections.size,
    ingestBufferedBytes: () => {
      let bytes = 0;
      for (const c of ingestConnections) bytes += c.bufferedBytes;
      return bytes;
    },
    kafkaPartitions: () => (kafka && state === 'ready' ? kafka.pipeline.partitions().length : 0),
  });
  // Created before the pipeline, so that its first join and restore are counted.
  const kafkaMetrics = config.kafka
    ? registerKafkaMetrics(metrics.registry, config.kafka.groupId)
    : undefined;
  const stats = new LiveStats();
  const lastPredictions = new LastPredictions(config.server.lastPredictions);
  const startedAt = Date.now();
  let modelLabel = '';

  const ingestWss = new WebSocketServer({
    noServer: true,
    maxPayload: config.sources.websocket.maxPayload,
    perMessageDeflate: false,
  });
  // Subscribers send nothing; a tiny limit stops them from using the socket to push data at us.
  const subscribeWss = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false });

  const routes = new Map<string, SocketRoute>();
  // The engine's limits, checked at the edge too, so a bad event is answered before it is queued
  // (or, with Kafka, forwarded to the input topic only to be dead-lettered).
  const ingestLimits = { ...config.sources.websocket, events: eventLimitsOf(config.events) };
  if (config.sources.websocket.enabled) {
    routes.set('/ingest', {
      scope: 'ingest',
      wss: ingestWss,
      connected: (ws, principal) => {
        watchErrors(ws, metrics, log);
        const connection = new IngestConnection(ws, principal, target!, ingestLimits, {
          onEvents: (n) => {
            metrics.eventsIn.inc({ source: 'websocket' }, n);
            // With Kafka the dashboard counts events as the engine consumes them, once.
            if (!config.kafka) stats.event(n);
          },
          onReject: (code) => {
            metrics.rejects.inc({ code });
            stats.rejected();
          },
          onClose: (code) => metrics.connectionsClosed.inc({ code }),
          onError: (err) =>
            log.error({ err }, 'unexpected error serving an /ingest connection; closed it (1011)'),
        });
        ingestConnections.add(connection);
        ws.on('close', () => ingestConnections.delete(connection));
      },
    });
  }
  if (config.sinks.websocket.enabled) {
    routes.set('/subscribe', {
      scope: 'subscribe',
      wss: subscribeWss,
      connected: (ws, principal, url) => {
        watchErrors(ws, metrics, log);
        subscriptions.add(ws, principal, filterFromQuery(url.searchParams));
      },
    });
  }

  // Without tokens only the Host header tells this server's own clients from a rebinding page;
  // the loopback names need the real port, known once listening.
  let hosts: HostAllowlist | undefined;
  const limits = new ConnectionLimits({
    overall: config.server.maxConnections,
    perEndpoint: new Map([
      ['/ingest', config.sources.websocket.maxConnections],
      ['/subscribe', config.sinks.websocket.maxConnections],
    ]),
    perToken: tokens.enabled ? config.auth.maxConnectionsPerToken : undefined,
  });

  const server: Server = createServer(
    createRequestListener({
      get hosts() {
        return hosts;
      },
      onError: (err) => log.error({ err }, 'unexpected error answering an HTTP request; answered 500'),
      notReadyReason: () =>
        state === 'ready'
          ? kafka?.notReadyReason()
          : state === 'starting'
            ? config.kafka
              ? 'loading the model and joining the Kafka consumer group'
              : 'loading the model and opening the state store'
            : 'shutting down',
      metrics,
      tokens,
      store: () => (state === 'ready' ? (kafka?.lookup ?? store) : undefined),
      lastPredictions,
      admin: () =>
        rollout && state === 'ready'
          ? {
              promote: (model) => rollout!.rollout.promote(model),
              rollback: () => rollout!.rollout.rollback(),
              status: () => rolloutStatus(rollout!),
            }
          : undefined,
      allowedOrigins: config.server.allowedOrigins,
      stats: async () => ({
        model: pipeline?.stepper.modelLabel ?? modelLabel,
        ...(rollout ? { models: rolloutStatus(rollout) } : {}),
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
        ...stats.snapshot(),
        keys: store && state === 'ready' ? await store.size() : 0,
        subscribers: subscriptions.size,
        ingestConnections: ingestConnections.size,
        dropped,
        ...(kafka && state === 'ready' && config.kafka
          ? { kafka: kafka.pipeline.health.snapshot(config.kafka.groupId) }
          : {}),
      }),
      dashboard: config.dashboard.enabled ? new DashboardFiles() : undefined,
    }),
  );
  server.on(
    'upgrade',
    createUpgradeHandler({
      routes,
      tokens,
      allowedOrigins: config.server.allowedOrigins,
      get hosts() {
        return hosts;
      },
      limits,
      onError: (err) => log.error({ err }, 'unexpected error handling a WebSocket upgrade; answered 500'),
      unavailable: () =>
        state === 'ready'
          ? undefined
          : state === 'starting'
            ? 'the server is starting'
            : 'the server is shutting down',
      onRejected: (reason) => metrics.connectionsRejected.inc({ reason }),
    }),
  );
  server.listen(config.server.port, config.server.host);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const host = config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host;
  if (!tokens.enabled) {
    // The address bound to is a name of this server too, unless it stands for every interface.
    const bound = ['0.0.0.0', '::'].includes(config.server.host) ? [] : [`${host}:${port}`];
    hosts = new HostAllowlist([...config.server.allowedHosts, ...bound], port);
  }
  const url = `http://${host}:${port}`;

  let stopDemo: (() => void) | undefined;
  let model: Model;
  try {
    const entries = config.kafka ? undefined : modelEntries(config);
    if (entries) {
      const started = await startRollout(config, entries, metrics, stats, log, (p, source) => {
        if (source.primary) lastPredictions.record(p);
        subscriptions.publish(p, source);
      });
      ({ store, pipeline, rollout } = started);
      model = started.rollout.models[0].model;
      target = pipeline;
      modelLabel = pipeline.stepper.modelLabel;
    } else if (config.kafka) {
      model = await loadModel(config.model.path);
      kafka = await startKafkaMode({ ...config, kafka: config.kafka }, model, {
        onBatch: (r) => {
          metrics.eventsIn.inc({ source: 'kafka' }, r.events);
          stats.event(r.events);
          metrics.batchSize.observe(r.events);
          metrics.stepSeconds.observe(r.stepSeconds);
          stats.batch(r.events, r.stepSeconds);
          metrics.predictionsOut.inc(r.predictions);
          metrics.duplicates.inc(r.duplicates);
          for (const rejected of r.rejected) {
            metrics.rejects.inc({ code: rejected.code });
            stats.rejected();
          }
          for (const prediction of r.fresh) {
            metrics.eventLatencySeconds.observe(r.seconds);
            stats.prediction(r.seconds);
            lastPredictions.record(prediction);
            subscriptions.publish(prediction);
          }
        },
        onRestore: (reports, ms) => {
          for (const r of reports) {
            for (const bad of r.unreadable) log.warn({ changelog: bad }, unreadableMessage(bad));
          }
          log.info(
            { ms: Math.round(ms), records: reports.reduce((n, r) => n + r.records, 0) },
            'state restored from the changelog',
          );
        },
        onStandbyError: (partition, error) =>
          log.warn(
            { partition, err: error.message },
            'following a changelog partition as a standby failed; trying again in a second',
          ),
        onStandbyUnreadable: (records) => {
          for (const bad of records) log.warn({ changelog: bad }, unreadableMessage(bad));
        },
        onForwarded: () => metrics.eventsForwarded.inc(),
        ...(kafkaMetrics ? { healthObserver: kafkaMetrics.observer } : {}),
        onStall: (message) => {
          if (message) log.error({ kafka: 'stalled' }, message);
          else log.info({ kafka: 'resumed' }, 'the Kafka pipeline is committing batches again');
        },
        onWorkerCrash: (error) => log.error({ kafka: 'worker-crashed' }, error.message),
        onConsumerRetry: (error, repeats) =>
          log.warn(
            { kafka: 'consumer-retry', repeats, err: error.message },
            'a Kafka fetch or batch failed; the consumer retries it after a backoff (repeats: failures since the last such line)',
          ),
        onRejoin: (attempt, error) =>
          log.warn(
            { attempt, err: error.message },
            'the Kafka consumer crashed with an error kafkajs does not recover from; a new consumer joins the group',
          ),
      });
      kafkaMetrics?.attach(kafka.pipeline.health);
      // One member on this thread: its LMDB store; with workers, their states behind one read-only store.
      store = kafka.pipeline.store ?? instanceStore(kafka.pipeline);
      target = kafka.target;
      modelLabel = kafka.pipeline.modelLabel;
    } else {
      model = await loadModel(config.model.path);
      ({ store, pipeline } = await startEngine(config, model, metrics, stats, log));
      target = pipeline;
      modelLabel = pipeline.stepper.modelLabel;
      pipeline.onPrediction((prediction) => {
        lastPredictions.record(prediction);
        subscriptions.publish(prediction);
      });
    }
    if (config.sources.demo.enabled) {
      stopDemo = await startDemoFeed(target, {
        file: config.sources.demo.file,
        eventsPerSecond: config.sources.demo.eventsPerSecond,
        onEvents: (n) => {
          metrics.eventsIn.inc({ source: 'demo' }, n);
          stats.event(n);
        },
      });
    }
  } catch (err) {
    if (kafka) await kafka.stop();
    else await store?.close();
    server.close();
    throw err;
  }
  state = 'ready';
  // An install without a C compiler steps on wasm, about half as fast: say so once, and how to fix it.
  const native = loadNative();
  if (native instanceof Error && (process.env['CELLSTREAM_KERNEL'] ?? 'auto') === 'auto') {
    log.warn({ reason: native.message }, 'native kernel unavailable: stepping on the wasm kernel');
  }
  log.info(
    {
      url,
      model: modelLabel,
      modelPath: config.model.path,
      ...(rollout ? { models: rollout.rollout.roles() } : {}),
      state: config.state.store === 'lmdb' ? config.state.path : 'memory',
      ...(config.kafka
        ? {
            kafka: {
              brokers: config.kafka.brokers,
              inputTopic: config.kafka.inputTopic,
              outputTopic: config.kafka.outputTopic,
              groupId: config.kafka.groupId,
              exactlyOnce: config.kafka.exactlyOnce,
              partitions: kafka?.pipeline.partitions(),
            },
          }
        : {}),
      auth: tokens.enabled ? 'tokens' : 'none',
      demoFeed: config.sources.demo.enabled,
    },
    `cellstream serving ${modelLabel} at ${url}/ (ingest ${url.replace('http', 'ws')}/ingest, subscribe ${url.replace('http', 'ws')}/subscribe)`,
  );

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      state = 'closing';
      log.info('shutting down: no new connections; answering events already read');
      stopDemo?.();
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of ingestConnections) c.stopReading();
      const deadline = Date.now() + config.server.shutdownTimeoutMs;
      // Every event read is answered: applied by the local engine, or acknowledged by Kafka.
      await withDeadline(kafka ? kafka.closeIngest() : pipeline!.drain(), deadline);
      await until(() => [...ingestConnections].every((c) => c.pending === 0), deadline);
      for (const c of ingestConnections) c.close(CLOSE.goingAway, 'server shutting down');
      // The engine stops before subscribers are let go, so they see every prediction it makes.
      // Kafka: stop fetching, finish the batch in flight, commit, leave the group, close the
      // state; not bounded by the deadline, since cutting it short would only redeliver the batch.
      if (kafka) {
        log.info('stopping the Kafka pipeline: finishing the batch in flight, then leaving the group');
        await kafka.stop();
      } else await store!.close();
      subscriptions.closeAll(CLOSE.goingAway, 'server shutting down');
      await until(() => ingestWss.clients.size === 0 && subscribeWss.clients.size === 0, deadline);
      for (const ws of [...ingestWss.clients, ...subscribeWss.clients]) ws.terminate();
      server.closeAllConnections();
      await serverClosed;
      log.info('shut down: state flushed and store closed');
    })();
    return closing;
  };

  return { url, port, model, store, pipeline, kafka, rollout, subscriptions, metrics, close };
}

/** The local engine (no Kafka): the configured store behind one `EnginePipeline`, with its metrics. */
async function startEngine(
  config: Config,
  model: Model,
  metrics: ServeMetrics,
  stats: LiveStats,
  log: Logger,
): Promise<{ store: StateStore; pipeline: EnginePipeline }> {
  const store = await openStore(config, model);
  const pipeline = new EnginePipeline({
    stepper: stepperOptionsOf(config, model, store, config.model.label),
    maxBatch: config.engine.maxBatch,
    maxDelayMs: config.engine.maxDelayMs,
    hooks: engineHooks(metrics, stats, log),
  });
  return { store, pipeline };
}

/** The metrics and logs of the local engine's batches and results. */
function engineHooks(metrics: ServeMetrics, stats: LiveStats, log: Logger): PipelineHooks {
  return {
    onBatch: (size, seconds) => {
      metrics.batchSize.observe(size);
      metrics.stepSeconds.observe(seconds);
      stats.batch(size, seconds);
    },
    onResult: (result, seconds) => {
      metrics.eventLatencySeconds.observe(seconds);
      if (result.kind === 'prediction') {
        metrics.predictionsOut.inc();
        stats.prediction(seconds);
      } else if (result.kind === 'duplicate') metrics.duplicates.inc();
      else {
        const code = result.kind === 'rejected' ? result.code : result.error.code;
        metrics.rejects.inc({ code });
        stats.rejected();
      }
    },
    onStateReset: (key, reason) => log.info({ key, reason }, 'key state discarded'),
    onFailure: (err) =>
      log.error({ err }, 'engine batch failed; its events were answered SERVER_UNAVAILABLE'),
    onCallbackError: (err) =>
      log.error({ err }, 'an answer or prediction callback threw; the other answers went on'),
  };
}

/** The local engine with several models: each on its own namespace, the primary answering. */
async function startRollout(
  config: Config,
  entries: NonNullable<ReturnType<typeof modelEntries>>,
  metrics: ServeMetrics,
  stats: LiveStats,
  log: Logger,
  publish: (prediction: Prediction, source: PredictionSource) => void,
): Promise<{ store: StateStore; pipeline: EnginePipeline; rollout: RolloutEngine }> {
  const rollout = await startRolloutEngine(config, entries, metrics, {
    onShadowPrediction: (name, prediction) => publish(prediction, { model: name, primary: false }),
    onShadowFailure: (name, err) =>
      log.warn(
        { err, model: name },
        "a shadow model failed to step a batch: its state for those events is not written and it has fallen behind; the primary's answers are unaffected",
      ),
    onSwitch: (primary, previous, at) =>
      log.info(
        { primary, previous, at },
        `model switch durable: ${primary} answers from event position ${at} on`,
      ),
    onHookError: (hook, err) =>
      log.error(
        { err, hook },
        `the rollout's ${hook} handler failed after a durable batch: that batch's answers went out; shadow predictions or metrics of it may be missing`,
      ),
  });
  const pipeline = new EnginePipeline({
    stepper: rollout.rollout,
    maxBatch: config.engine.maxBatch,
    maxDelayMs: config.engine.maxDelayMs,
    hooks: engineHooks(metrics, stats, log),
  });
  pipeline.onPrediction((prediction) =>
    publish(prediction, { model: rollout.nameOf(prediction.model) ?? prediction.model, primary: true }),
  );
  return { store: rollout.store, pipeline, rollout };
}

/** What `/v1/stats`, the dashboard and `GET /admin/models` show of the models. */
function rolloutStatus(rollout: RolloutEngine) {
  const record = rollout.rollout.record;
  return {
    roles: rollout.rollout.roles(),
    events: record.events,
    switches: record.switches,
    ...rollout.metrics.snapshot(),
  };
}

/** The configured store: LMDB (behind a bounded in-memory cache with `maxKeysInMemory`) or memory. */
async function openStore(config: Config, model: Model): Promise<StateStore> {
  if (config.state.store === 'memory') return new MemoryStateStore({ maxKeys: config.state.maxKeys });
  const lmdb = await LmdbStore.open({ path: config.state.path });
  try {
    // A directory a rollout left, with no keys of its own: its state is all in the namespaces.
    if ((await lmdb.size()) === 0) await refuseModelNamespaces(config.state.path);
  } catch (err) {
    await lmdb.close();
    throw err;
  }
  if (config.state.maxKeysInMemory === undefined) return lmdb;
  return new CachedStore({
    backing: lmdb,
    maxKeys: config.state.maxKeysInMemory,
    stateSize: stateSize(model),
    outputSize: outputSize(model),
  });
}

/** Keys whose state sits in process memory: all of a memory store, the cached ones of a cache, none of LMDB alone. */
async function keysInMemory(store: StateStore | undefined, state: string): Promise<number> {
  if (!store || state === 'closing') return 0;
  if (store instanceof MemoryStateStore) return store.size();
  if (store instanceof CachedStore) return store.cachedKeys;
  return 0;
}

/** Server-side socket errors (a frame over `maxPayload`, a protocol violation) close the socket; count and log them. */
function watchErrors(ws: import('ws').WebSocket, metrics: ServeMetrics, log: Logger): void {
  ws.on('error', (err: Error & { code?: string }) => {
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
      metrics.connectionsClosed.inc({ code: CLOSE.tooBig });
    log.debug({ err: err.message, code: err.code }, 'websocket closed on error');
  });
}

async function withDeadline(work: Promise<void>, deadline: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
  });
  await Promise.race([work, timeout]);
  clearTimeout(timer);
}

async function until(done: () => boolean, deadline: number): Promise<void> {
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}
