import { join } from 'node:path';
import { z } from 'zod';
import { DEFAULT_ID_WINDOW, MAX_ID_WINDOW } from '../engine/redelivery.js';
import { DEFAULT_MAX_JSON_DEPTH } from '../events/jsonDepth.js';
import { DEFAULT_MAX_ID_BYTES, DEFAULT_MAX_KEY_BYTES, KEY_BYTES_CEILING } from '../events/limits.js';
import { KAFKA_CLIENTS } from '../kafka/adapter.js';
import { PACKAGE_ROOT } from '../paths.js';
import { KAFKA_COMMIT_DEFAULTS, KAFKA_WORKERS } from '../pipelines/commitDefaults.js';
import { KAFKA_HEALTH_DEFAULTS } from '../pipelines/kafkaHealth.js';
import { recordInputSchema, recordOutputSchema, registrySchema } from '../records/config.js';
import { KAFKA_SOURCE_DEFAULTS } from '../sources/kafkaSource.js';
import { MAX_MODELS, MODEL_NAME_PATTERN } from '../state/modelStates.js';

const MODEL_NAME_RULE = '1 to 100 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit';

/** The model `serve` runs when none is configured: the demo model shipped in the package. */
export const DEMO_MODEL = join(PACKAGE_ROOT, 'demo', 'visits.cellstream.json');
/** The events the demo feed replays when no file is configured. */
export const DEMO_EVENTS = join(PACKAGE_ROOT, 'demo', 'visits.ndjson');

const int = (min: number, max: number) => z.number().int().min(min).max(max);

/**
 * Defaults of the limits that keep one client from holding the server's memory or sockets; every
 * one is a key below and a row of docs/configuration.md and docs/security.md.
 */
export const DEFAULT_LIMITS = {
  /** WebSocket connections at once, both endpoints together. */
  maxConnections: 2048,
  /** `/ingest` connections at once. */
  maxIngestConnections: 1024,
  /** `/subscribe` connections at once. */
  maxSubscribers: 1024,
  /** WebSocket connections at once of any one configured token. */
  maxConnectionsPerToken: 256,
  /** Answer bytes waiting for one `/ingest` client before its socket is no longer read. */
  maxOutboundBytes: 1024 * 1024,
  /** A rejected event longer than this (as JSON) is echoed as a 200-character prefix. */
  maxEchoBytes: 1024,
} as const;

/** `admin`: promote and roll back models (POST /admin/…); given to no token unless listed. */
export const SCOPES = ['ingest', 'subscribe', 'read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/**
 * One access token. The secret is given exactly one way: `sha256` (hex digest, so the config file
 * holds no secret), `env` (the name of an environment variable holding it) or `token` (plain text,
 * for tests and local use).
 */
const tokenSchema = z
  .strictObject({
    name: z.string().min(1),
    token: z.string().min(16, 'a token must be at least 16 characters').optional(),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/i, 'sha256 must be 64 hex digits')
      .optional(),
    env: z.string().min(1).optional(),
    scopes: z.array(z.enum(SCOPES)).min(1),
    keyPrefix: z.string().min(1).optional(),
  })
  .refine((t) => [t.token, t.sha256, t.env].filter((v) => v !== undefined).length === 1, {
    message: 'give exactly one of token, sha256 or env',
  });

/** A value that must be given whenever its section is: zod's own message for `undefined` says less. */
const required = (what: string) => ({
  error: (issue: { input: unknown }) => (issue.input === undefined ? `required: ${what}` : undefined),
});

const topicName = (what: string) =>
  z
    .string(required(what))
    .regex(/^[a-zA-Z0-9._-]{1,249}$/, 'a Kafka topic name: 1 to 249 of a-z A-Z 0-9 . _ -');

/** `host:port` list; a string is split at commas, as the flag and the environment give it. */
const brokerList = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? v
          .split(',')
          .map((b) => b.trim())
          .filter((b) => b.length > 0)
      : v,
  z
    .array(
      z.string().regex(/^[^\s:]+:\d{1,5}$/, 'a broker is host:port'),
      required('the bootstrap brokers, host:port, comma-separated'),
    )
    .min(1, 'give at least one broker, host:port'),
);

/**
 * Kafka in and out, one section rather than `sources.kafka` + `sinks.kafka`: the input topic, the
 * predictions topic, the state changelog and the consumer group are one unit (the changelog is
 * partitioned like the input, and exactly-once commits predictions, changelog and offsets in one
 * transaction), so neither half can be configured or run without the other. Absent: no Kafka.
 * Defaults match `cellstream kafka`.
 */
const kafkaSchema = z.strictObject({
  brokers: brokerList,
  inputTopic: topicName('the topic events are read from'),
  outputTopic: topicName('the topic predictions are written to'),
  deadLetterTopic: topicName('').optional(),
  changelogTopic: topicName('').optional(),
  groupId: z.string(required('the consumer group all instances share')).min(1),
  appId: z.string().min(1).optional(),
  exactlyOnce: z.boolean().default(false),
  client: z.enum(KAFKA_CLIENTS).default('kafkajs'),
  /** 1: standby state for every partition not owned (docs/state.md); 0: none. */
  standbys: int(0, 1).default(0),
  inputPartitions: int(1, 100_000).optional(),
  maxBatch: int(1, 100_000).default(KAFKA_SOURCE_DEFAULTS.maxBatch),
  commitIntervalMs: int(0, 600_000).default(KAFKA_COMMIT_DEFAULTS.commitIntervalMs),
  maxCachedKeys: int(1, 10_000_000).default(KAFKA_COMMIT_DEFAULTS.maxCachedKeys),
  maxWaitTimeInMs: int(1, 60_000).default(KAFKA_SOURCE_DEFAULTS.maxWaitTimeInMs),
  sessionTimeout: int(1000, 3_600_000).default(KAFKA_SOURCE_DEFAULTS.sessionTimeout),
  heartbeatInterval: int(100, 600_000).default(KAFKA_SOURCE_DEFAULTS.heartbeatInterval),
  onConsumerCrash: z.enum(['rejoin', 'exit']).default(KAFKA_SOURCE_DEFAULTS.onConsumerCrash),
  maxRejoins: int(0, 1000).default(KAFKA_SOURCE_DEFAULTS.maxRejoins),
  stallTimeoutMs: int(1000, 86_400_000).default(KAFKA_HEALTH_DEFAULTS.stallTimeoutMs),
  /** Consumer group members in this process, each on a worker thread when above 1 (docs/kafka.md, Workers). */
  workers: int(KAFKA_WORKERS.min, KAFKA_WORKERS.max).default(KAFKA_WORKERS.default),
  /** A Confluent-compatible schema registry, for the Avro, JSON Schema and Protobuf formats. */
  registry: registrySchema.optional(),
  /** How input records are written and which fields make an event (src/records). */
  input: recordInputSchema.optional(),
  /** How predictions are written. */
  output: recordOutputSchema.optional(),
});

/**
 * The whole `serve` configuration. Every key has a default, so an empty file (or none) is a
 * complete configuration; docs/configuration.md lists them and config/default.yaml spells them out.
 */
export const configSchema = z
  .strictObject({
    model: z
      .strictObject({
        path: z.string().min(1).default(DEMO_MODEL),
        label: z.string().min(1).optional(),
        /** A name for the model's state namespace when several models run; default its `name@version`. */
        name: z.string().regex(MODEL_NAME_PATTERN, MODEL_NAME_RULE).optional(),
        /** A model file stepped beside this one as a shadow (`--shadow`). */
        shadow: z.string().min(1).optional(),
        onMismatch: z.enum(['refuse', 'reset']).default('refuse'),
      })
      .prefault({}),
    /**
     * Several models in one process (docs/rollout.md). With a `primary` entry it replaces `model`;
     * without one, its entries are shadows of `model`.
     */
    models: z
      .array(
        z.strictObject({
          name: z.string().regex(MODEL_NAME_PATTERN, MODEL_NAME_RULE).optional(),
          path: z.string().min(1),
          role: z.enum(['primary', 'shadow']).default('shadow'),
          label: z.string().min(1).optional(),
        }),
      )
      .max(MAX_MODELS)
      .default([]),
    state: z
      .strictObject({
        store: z.enum(['lmdb', 'memory']).default('lmdb'),
        path: z.string().min(1).default('./.data/state'),
        maxKeys: int(1, Number.MAX_SAFE_INTEGER).default(1_000_000),
        maxKeysInMemory: int(1, Number.MAX_SAFE_INTEGER).optional(),
        ttl: z
          .string()
          .regex(/^\s*\d+(\.\d+)?\s*(ms|s|m|h|d|w)?\s*$/, 'a duration such as 90s, 12h or 30d')
          .optional(),
        ttlClock: z.enum(['event', 'processing']).default('event'),
        idWindow: int(1, MAX_ID_WINDOW).default(DEFAULT_ID_WINDOW),
      })
      .prefault({}),
    events: z
      .strictObject({
        maxKeyBytes: int(1, KEY_BYTES_CEILING).default(DEFAULT_MAX_KEY_BYTES),
        maxIdBytes: int(1, 64 * 1024).default(DEFAULT_MAX_ID_BYTES),
        maxTsAhead: z
          .string()
          .regex(/^\s*(off|\d+(\.\d+)?\s*(ms|s|m|h|d|w)?)\s*$/, "a duration such as 1d or 6h, or 'off'")
          .default('1d'),
      })
      .prefault({}),
    engine: z
      .strictObject({
        maxBatch: int(1, 65_536).default(256),
        maxDelayMs: z.number().min(0).max(1000).default(0),
      })
      .prefault({}),
    server: z
      .strictObject({
        host: z.string().min(1).default('127.0.0.1'),
        port: int(0, 65_535).default(8080),
        allowInsecure: z.boolean().default(false),
        allowedOrigins: z.array(z.string().url().or(z.literal('*'))).default([]),
        allowedHosts: z
          .array(
            z
              .string()
              .regex(/^(\*|(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+)(:\d{1,5})?)$/, 'a host name, host:port or *'),
          )
          .default([]),
        maxConnections: int(1, 10_000_000).default(DEFAULT_LIMITS.maxConnections),
        shutdownTimeoutMs: int(0, 600_000).default(10_000),
        lastPredictions: int(0, 10_000_000).default(10_000),
      })
      .prefault({}),
    sources: z
      .strictObject({
        websocket: z
          .strictObject({
            enabled: z.boolean().default(true),
            maxPayload: int(64, 64 * 1024 * 1024).default(64 * 1024),
            eventsPerSecond: z.number().positive().default(5000),
            burst: int(1, 10_000_000).default(10_000),
            maxInFlight: int(1, 1_000_000).default(2048),
            maxConnections: int(1, 10_000_000).default(DEFAULT_LIMITS.maxIngestConnections),
            maxJsonDepth: int(2, 10_000).default(DEFAULT_MAX_JSON_DEPTH),
            maxOutboundBytes: int(1024, 1024 * 1024 * 1024).default(DEFAULT_LIMITS.maxOutboundBytes),
            maxEchoBytes: int(0, 64 * 1024 * 1024).default(DEFAULT_LIMITS.maxEchoBytes),
          })
          .prefault({}),
        demo: z
          .strictObject({
            enabled: z.boolean().default(false),
            file: z.string().min(1).default(DEMO_EVENTS),
            eventsPerSecond: z.number().positive().max(100_000).default(20),
          })
          .prefault({}),
      })
      .prefault({}),
    sinks: z
      .strictObject({
        websocket: z
          .strictObject({
            enabled: z.boolean().default(true),
            maxBufferedBytes: int(1024, 1024 * 1024 * 1024).default(1024 * 1024),
            onSlow: z.enum(['drop', 'close']).default('drop'),
            maxConnections: int(1, 10_000_000).default(DEFAULT_LIMITS.maxSubscribers),
          })
          .prefault({}),
      })
      .prefault({}),
    auth: z
      .strictObject({
        tokens: z.array(tokenSchema).default([]),
        maxConnectionsPerToken: int(1, 10_000_000).default(DEFAULT_LIMITS.maxConnectionsPerToken),
      })
      .prefault({}),
    dashboard: z
      .strictObject({
        enabled: z.boolean().default(true),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .prefault({}),
    kafka: kafkaSchema.optional(),
  })
  .superRefine((config, ctx) => {
    const severalModels = config.models.length > 0 || config.model.shadow !== undefined;
    if (config.models.filter((m) => m.role === 'primary').length > 1) {
      ctx.addIssue({ code: 'custom', path: ['models'], message: 'at most one entry may have role primary' });
    }
    if (
      severalModels &&
      config.models.some((m) => m.role === 'primary') &&
      config.model.shadow !== undefined
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['model', 'shadow'],
        message: 'models has a primary entry, which replaces model: list the shadow in models instead',
      });
    }
    // `model` and `model.shadow` count too unless a primary entry replaces them (modelEntries).
    const modelCount = config.models.some((m) => m.role === 'primary')
      ? config.models.length
      : 1 + (config.model.shadow === undefined ? 0 : 1) + config.models.length;
    if (modelCount > MAX_MODELS) {
      ctx.addIssue({
        code: 'custom',
        path: ['models'],
        message: `at most ${MAX_MODELS} models in one process, the primary included; this configuration has ${modelCount} (model, model.shadow and models together): drop shadows you no longer compare`,
      });
    }
    if (severalModels && config.state.maxKeysInMemory !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['state', 'maxKeysInMemory'],
        message: 'not supported with several models yet (each model namespace is LMDB without a cache)',
      });
    }
    const kafka = config.kafka;
    if (kafka === undefined) return;
    if (severalModels) {
      ctx.addIssue({
        code: 'custom',
        path: [config.models.length > 0 ? 'models' : 'model'],
        message:
          'several models (shadow, promote) are not supported with kafka yet: serve them without kafka',
      });
    }
    // With Kafka, the one engine is the Kafka pipeline, whose state is LMDB at state.path backed by
    // the changelog; settings of the WebSocket engine's store would be silently ignored otherwise.
    if (config.state.store !== 'lmdb') {
      ctx.addIssue({
        code: 'custom',
        path: ['state', 'store'],
        message: 'with kafka, state is LMDB at state.path backed by the changelog topic: set lmdb',
      });
    }
    for (const key of ['ttl', 'maxKeysInMemory'] as const) {
      if (config.state[key] !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['state', key],
          message: 'not supported with kafka yet (the Kafka pipeline keeps every key of its partitions)',
        });
      }
    }
    for (const side of ['input', 'output'] as const) {
      const format = kafka[side]?.format ?? 'json';
      if (format !== 'json' && kafka.registry === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['kafka', 'registry'],
          message: `kafka.${side}.format ${format} needs the schema registry: set kafka.registry.url`,
        });
      }
    }
    const input = kafka.input;
    const plainIn =
      input === undefined ||
      (input.format === 'json' && input.cloudEvents === 'off' && input.mapping === undefined);
    if (!plainIn && (config.sources.websocket.enabled || config.sources.demo.enabled)) {
      ctx.addIssue({
        code: 'custom',
        path: ['kafka', 'input'],
        message:
          'WebSocket ingest and the demo feed forward JSON events into kafka.inputTopic, which this kafka.input would not read: set sources.websocket.enabled and sources.demo.enabled to false, or leave kafka.input at its default',
      });
    }
    if (kafka.output?.cloudEvents === 'structured' && kafka.output.format !== 'json') {
      ctx.addIssue({
        code: 'custom',
        path: ['kafka', 'output', 'cloudEvents'],
        message:
          'structured CloudEvents carry JSON data: use kafka.output.format json, or cloudEvents binary',
      });
    }
    if (kafka.heartbeatInterval >= kafka.sessionTimeout) {
      ctx.addIssue({
        code: 'custom',
        path: ['kafka', 'heartbeatInterval'],
        message: `must be below kafka.sessionTimeout (${kafka.sessionTimeout})`,
      });
    }
  });

/** A validated configuration, every default filled in. */
export type Config = z.infer<typeof configSchema>;
export type TokenConfig = Config['auth']['tokens'][number];
export type KafkaConfig = NonNullable<Config['kafka']>;
/** What a configuration file, the environment or flags may say: any part of `Config`. */
export type ConfigInput = z.input<typeof configSchema>;
