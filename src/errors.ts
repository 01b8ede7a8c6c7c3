/**
 * Every error cellstream raises on purpose is a `CellstreamError` with a stable `code`.
 * The codes are listed, with what to do about each, in docs/errors.md; keep the two in step.
 * `retriable` is read only by retry logic; everything else branches on `code`.
 */
export type ErrorCode =
  // model import and validation
  | 'MODEL_FORMAT_UNKNOWN'
  | 'MODEL_UNSUPPORTED_OP'
  | 'MODEL_UNSUPPORTED_LAYER'
  | 'MODEL_NOT_STREAMABLE'
  | 'MODEL_INVALID'
  // events
  | 'EVENT_MALFORMED_JSON'
  | 'EVENT_TOO_DEEP'
  | 'EVENT_INVALID'
  | 'EVENT_WRONG_SIZE'
  | 'EVENT_UNKNOWN_CATEGORY'
  | 'EVENT_KEY_MISMATCH'
  | 'EVENT_KEY_TOO_LONG'
  | 'EVENT_ID_TOO_LONG'
  | 'EVENT_TS_IN_FUTURE'
  | 'EVENT_SCHEMA_UNKNOWN'
  | 'EVENT_UNDECODABLE'
  | 'EVENT_FIELD_MISSING'
  // feature specs
  | 'SPEC_INVALID'
  // state
  | 'STATE_MODEL_MISMATCH'
  | 'STATE_CORRUPT'
  | 'STATE_CLOSED'
  | 'STATE_FULL'
  | 'STATE_KEY_TOO_LONG'
  | 'STATE_NOT_EMPTY'
  | 'STATE_IN_USE'
  // serving
  | 'AUTH_KEY_FORBIDDEN'
  | 'SERVER_UNAVAILABLE'
  | 'STATE_KEY_RESERVED'
  // Kafka
  | 'KAFKA_FENCED'
  | 'KAFKA_CONSUMER_LOST'
  | 'KAFKA_WORKER_CRASHED'
  | 'REGISTRY_UNAVAILABLE'
  // kernels
  | 'KERNEL_UNAVAILABLE'
  // configuration and CLI
  | 'CONFIG_INVALID'
  | 'USAGE';

export class CellstreamError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retriable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options?.retriable ?? false;
  }
}

/** The model file is of a kind no importer recognises. */
export class ModelFormatError extends CellstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MODEL_FORMAT_UNKNOWN', message, options);
  }
}

/** An ONNX graph uses an operator cellstream cannot run; names the op and the node. */
export class UnsupportedOpError extends CellstreamError {
  readonly op: string;
  readonly node: string;
  constructor(op: string, node: string, detail?: string) {
    super(
      'MODEL_UNSUPPORTED_OP',
      `unsupported ONNX op '${op}' at node '${node}'${detail ? `: ${detail}` : ''}. ` +
        'cellstream runs LSTM and GRU nodes, the shape plumbing exporters write around them ' +
        '(Shape, Gather, Unsqueeze, Concat, ConstantOfShape, Slice, Squeeze, Transpose, Reshape, Identity, ' +
        'Cast, Expand, and arithmetic on shapes) and a dense head (MatMul, Add, Gemm, Relu, Sigmoid, Tanh, ' +
        'Softmax). Export the recurrent part plus its head only; do pre-processing in the feature spec.',
    );
    this.op = op;
    this.node = node;
  }
}

/** A Keras / TF.js layer class cellstream does not run; names the class and the layer. */
export class UnsupportedLayerError extends CellstreamError {
  readonly layerClass: string;
  readonly layerName: string;
  constructor(layerClass: string, layerName: string, detail?: string) {
    super(
      'MODEL_UNSUPPORTED_LAYER',
      `unsupported layer ${layerClass} '${layerName}'${detail ? `: ${detail}` : ''}`,
    );
    this.layerClass = layerClass;
    this.layerName = layerName;
  }
}

/** A layer that needs the future of the sequence (bidirectional, reversed) cannot run one step per event. */
export class NotStreamableError extends CellstreamError {
  readonly layer: string;
  constructor(layer: string, why: string) {
    super(
      'MODEL_NOT_STREAMABLE',
      `layer '${layer}' cannot be streamed: ${why}. Streaming needs forward-only recurrent layers; ` +
        'export a unidirectional model.',
    );
    this.layer = layer;
  }
}

/** The model's structure or weights are inconsistent (shapes, missing tensors). */
export class ModelInvalidError extends CellstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MODEL_INVALID', message, options);
  }
}

/** An event that cannot be applied; it is dead-lettered with this reason, never dropped. */
export class EventError extends CellstreamError {}

export class MalformedJsonError extends EventError {
  constructor(detail: string) {
    super('EVENT_MALFORMED_JSON', `malformed JSON: ${detail}`);
  }
}

/**
 * The event's text nests arrays and objects deeper than the configured limit. Checked on the raw
 * text before it is parsed, so no code that recurses over a value (serializing an echo, say) ever
 * meets one deep enough to exhaust the stack.
 */
export class EventTooDeepError extends EventError {
  readonly limit: number;
  constructor(limit: number) {
    super(
      'EVENT_TOO_DEEP',
      `the event is nested deeper than ${limit} levels (arrays and objects); send a flat event`,
    );
    this.limit = limit;
  }
}

export class InvalidEventError extends EventError {
  constructor(detail: string) {
    super('EVENT_INVALID', `invalid event: ${detail}`);
  }
}

export class WrongSizeError extends EventError {
  constructor(what: string, expected: number, actual: number) {
    super('EVENT_WRONG_SIZE', `${what} has ${actual} values, the model takes ${expected}`);
  }
}

/** A one-hot feature's value is none of the spec's categories (and the spec does not ignore unknowns). */
export class UnknownCategoryError extends EventError {
  constructor(detail: string) {
    super('EVENT_UNKNOWN_CATEGORY', `unknown category: ${detail}`);
  }
}

/** A feature spec is malformed or does not fit its model; the message names the offending key. */
export class FeatureSpecError extends CellstreamError {
  constructor(message: string) {
    super('SPEC_INVALID', message);
  }
}

/** A Kafka message's key and its event's `key` field name different entities. */
export class KeyMismatchError extends EventError {
  constructor(messageKey: string, eventKey: string) {
    super(
      'EVENT_KEY_MISMATCH',
      `the message key '${messageKey}' differs from the event's key '${eventKey}'; the message key decides the partition, so the event cannot be applied to either`,
    );
  }
}

/** An event's key is longer, in UTF-8 bytes, than the configured limit (`events.maxKeyBytes`). */
export class KeyTooLongError extends EventError {
  constructor(bytes: number, limit: number) {
    super(
      'EVENT_KEY_TOO_LONG',
      `the key is ${bytes} bytes long in UTF-8, more than the limit of ${limit}; shorten it at the producer (a hash of a long natural key works)`,
    );
  }
}

/** An event's id is longer, in UTF-8 bytes, than the configured limit (`events.maxIdBytes`). */
export class IdTooLongError extends EventError {
  constructor(bytes: number, limit: number) {
    super(
      'EVENT_ID_TOO_LONG',
      `the id is ${bytes} bytes long in UTF-8, more than the limit of ${limit}; use shorter ids (a UUID is 36 bytes)`,
    );
  }
}

/** An event's `ts` lies further ahead of the wall clock than `events.maxTsAhead` allows. */
export class TsInFutureError extends EventError {
  constructor(ts: number, now: number, limitMs: number) {
    super(
      'EVENT_TS_IN_FUTURE',
      `ts ${new Date(ts).toISOString()} is more than ${limitMs} ms ahead of this server's clock (${new Date(now).toISOString()}); ` +
        "send ms since the epoch (not µs or ns), check the producer's clock, or raise events.maxTsAhead",
    );
  }
}

/**
 * A record names a schema id (Confluent wire format) that the schema registry does not know: the
 * producer wrote to another registry, or the schema was deleted.
 */
export class SchemaUnknownError extends EventError {
  constructor(id: number, registry: string) {
    super(
      'EVENT_SCHEMA_UNKNOWN',
      `schema id ${id} is not in the schema registry at ${registry}; point kafka.registry.url at the registry the producer writes to`,
    );
  }
}

/**
 * A record's bytes do not decode in the configured `kafka.input.format`: not the Confluent wire
 * format, a schema of another type than configured, or bytes that do not fit their schema.
 */
export class RecordUndecodableError extends EventError {
  constructor(format: string, detail: string) {
    super(
      'EVENT_UNDECODABLE',
      `the record does not decode as ${format}: ${detail}; check kafka.input.format against what the producer writes`,
    );
  }
}

/** A field that `kafka.input.mapping` names is absent (or null) in a decoded record. */
export class FieldMissingError extends EventError {
  constructor(role: string, path: string) {
    super(
      'EVENT_FIELD_MISSING',
      `the record has no '${path}' (mapped as ${role} in kafka.input.mapping); fix the producer or the mapping`,
    );
  }
}

/**
 * The schema registry did not answer (or answered with an error other than "not found"). Not a
 * fault of the record: the batch is fetched again after a backoff, as when the broker is away.
 */
export class RegistryUnavailableError extends CellstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('REGISTRY_UNAVAILABLE', message, { ...options, retriable: true });
  }
}

export class StateError extends CellstreamError {}

/** An ingested event whose key lies outside the key prefix its token may write; not applied. */
export class KeyForbiddenError extends EventError {
  constructor(key: string, prefix: string) {
    super(
      'AUTH_KEY_FORBIDDEN',
      `key '${key.length > 40 ? `${key.slice(0, 40)}…` : key}' is outside this token's key prefix '${prefix}'`,
    );
  }
}

/** The server could not apply an event: it is shutting down, or its engine failed. Retry elsewhere or later. */
export class ServerUnavailableError extends CellstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SERVER_UNAVAILABLE', message, { ...options, retriable: true });
  }
}

/** Kafka refused a write because another instance now holds this partition's transactional id. */
export class FencedError extends CellstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('KAFKA_FENCED', message, options);
  }
}

/**
 * The Kafka consumer crashed with an error kafkajs does not recover from, and rejoining the group
 * was not allowed (`onConsumerCrash: exit`) or failed `maxRejoins` times in a row. The process exits
 * non-zero so that its supervisor restarts it.
 */
export class KafkaConsumerLostError extends CellstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('KAFKA_CONSUMER_LOST', message, options);
  }
}

/**
 * One of an instance's Kafka worker threads (`kafka.workers` > 1) ended on an uncaught error. The
 * instance stops its other workers gracefully and ends, so that its supervisor restarts it whole.
 */
export class KafkaWorkerCrashedError extends CellstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('KAFKA_WORKER_CRASHED', message, options);
  }
}

/** A kernel chosen explicitly (`kernel: 'native'` or `'wasm'`, CELLSTREAM_KERNEL) cannot run here; the message says why. */
export class KernelUnavailableError extends CellstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('KERNEL_UNAVAILABLE', message, options);
  }
}

export class ConfigError extends CellstreamError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

export class UsageError extends CellstreamError {
  constructor(message: string) {
    super('USAGE', message);
  }
}
