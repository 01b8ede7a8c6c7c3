import type { Envelope, Rejected } from '../engine/types.js';
import {
  EventError,
  FieldMissingError,
  InvalidEventError,
  KeyMismatchError,
  RecordUndecodableError,
  SchemaUnknownError,
} from '../errors.js';
import { admitEvent } from '../events/decode.js';
import { checkJsonDepth, DEFAULT_MAX_JSON_DEPTH } from '../events/jsonDepth.js';
import { DECODE_CEILINGS, type EventLimits } from '../events/limits.js';
import type { Position } from '../events/types.js';
import type { MessageHeaders } from '../kafka/adapter.js';
import { type CloudEventAttributes, ceAttributesFromHeaders, isStructuredCloudEvent } from './cloudEvents.js';
import type { RecordInputConfig, RecordInputMapping } from './config.js';
import { type FetchedSchema, type RegistryClient, SchemaNotFound } from './registry.js';
import { readMessageIndexes, unframe } from './wire.js';

/** The parts of a Kafka record the decoder reads. */
export interface RecordLike {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly offset: string;
  readonly headers?: MessageHeaders;
  readonly timestamp?: string;
}

export interface RecordDecoderOptions {
  readonly input: RecordInputConfig;
  /** Needed for every format but `json`. */
  readonly registry?: RegistryClient;
  /** The feature spec's named (not derived) values, for `mapping.values: spec`. */
  readonly specValueNames?: readonly string[];
  readonly maxJsonDepth?: number;
}

/** A decoded record and where its event parts come from. */
interface Decoded {
  readonly record: unknown;
  readonly ce?: CloudEventAttributes;
}

/**
 * Turns Kafka records written as Kafka shops write them (Avro, JSON Schema or Protobuf through a
 * schema registry, CloudEvents) into events for the engine, by `kafka.input`. A record that cannot
 * become an event is a `Rejected` with a typed code (dead-lettered like any other bad event); a
 * registry that does not answer throws `RegistryUnavailableError`, so the batch is fetched again.
 * Schemas are fetched once per id and kept.
 */
export class RecordDecoder {
  private readonly input: RecordInputConfig;
  private readonly registry: RegistryClient | undefined;
  private readonly mapping: RecordInputMapping | undefined;
  private readonly valuePaths: ReadonlyArray<readonly [string, string]> | undefined;
  private readonly maxJsonDepth: number;
  private readonly schemas = new Map<number, FetchedSchema>();

  constructor(options: RecordDecoderOptions) {
    this.input = options.input;
    this.registry = options.registry;
    this.mapping = options.input.mapping;
    this.maxJsonDepth = options.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH;
    if (options.input.format !== 'json' && !options.registry) {
      throw new RangeError(`kafka.input.format ${options.input.format} needs kafka.registry`);
    }
    const values = this.mapping?.values;
    if (values === 'spec') {
      const names = options.specValueNames ?? [];
      if (names.length === 0) {
        throw new RangeError(
          "kafka.input.mapping.values is 'spec' but the model has no feature spec with named values",
        );
      }
      this.valuePaths = names.map((n) => [n, n] as const);
    } else if (Array.isArray(values)) {
      this.valuePaths = values.map((n) => [n, n] as const);
    } else if (values !== undefined) {
      this.valuePaths = Object.entries(values);
    }
  }

  /** Decodes a run of records in order; schemas missing from the cache are fetched as met. */
  async decodeAll(
    topic: string,
    partition: number,
    records: readonly RecordLike[],
    limits: EventLimits = DECODE_CEILINGS,
    now: number = Date.now(),
  ): Promise<Array<Envelope | Rejected>> {
    const out: Array<Envelope | Rejected> = [];
    for (const r of records) out.push(await this.decode(topic, partition, r, limits, now));
    return out;
  }

  /** One record as an event, checked against the engine's event `limits` at `now`. */
  async decode(
    topic: string,
    partition: number,
    message: RecordLike,
    limits: EventLimits = DECODE_CEILINGS,
    now: number = Date.now(),
  ): Promise<Envelope | Rejected> {
    const position: Position = { kind: 'offset', topic, partition, offset: message.offset };
    let raw: string | undefined;
    try {
      if (message.value === null) throw new InvalidEventError('the message has no value (a tombstone)');
      const decoded = await this.decodeValue(message.value, message.headers);
      if (this.input.format !== 'json') raw = safeJson(decoded.record);
      const event = admitEvent(this.toEventObject(decoded, message), limits, now);
      return raw === undefined
        ? { event, raw: message.value.toString('utf8'), position }
        : { event, position };
    } catch (err) {
      if (!(err instanceof EventError)) throw err;
      return {
        kind: 'rejected',
        reason: err.message,
        code: err.code,
        raw: raw ?? message.value?.toString('utf8') ?? '',
        position,
      };
    }
  }

  private async decodeValue(value: Buffer, headers: MessageHeaders | undefined): Promise<Decoded> {
    const mode = this.input.cloudEvents;
    if (mode === 'structured' || (mode === 'auto' && isStructuredCloudEvent(headers))) {
      const envelope = this.parseJsonText(value, 'a structured CloudEvent');
      if (envelope === null || typeof envelope !== 'object' || Array.isArray(envelope)) {
        throw new RecordUndecodableError('a structured CloudEvent', 'the value is not a JSON object');
      }
      const e = envelope as Record<string, unknown>;
      const ce = ceAttributesFromEnvelope(e);
      if (e['data_base64'] !== undefined) {
        if (typeof e['data_base64'] !== 'string') {
          throw new RecordUndecodableError('a structured CloudEvent', 'data_base64 is not a string');
        }
        return { record: await this.decodeData(Buffer.from(e['data_base64'], 'base64')), ce };
      }
      if (e['data'] === undefined || e['data'] === null) {
        throw new RecordUndecodableError('a structured CloudEvent', 'it has neither data nor data_base64');
      }
      if (this.input.format !== 'json') {
        throw new RecordUndecodableError(
          'a structured CloudEvent',
          `its data is JSON but kafka.input.format is ${this.input.format} (binary data goes in data_base64)`,
        );
      }
      return { record: e['data'], ce };
    }
    let ce: CloudEventAttributes | undefined;
    if (mode === 'binary' || mode === 'auto') {
      ce = ceAttributesFromHeaders(headers);
      if (ce === undefined && mode === 'binary') {
        throw new RecordUndecodableError(
          'a binary-mode CloudEvent',
          'the record has no ce_specversion header',
        );
      }
    }
    return ce ? { record: await this.decodeData(value), ce } : { record: await this.decodeData(value) };
  }

  /** The record (CloudEvents data) in `kafka.input.format`. */
  private async decodeData(value: Buffer): Promise<unknown> {
    const format = this.input.format;
    if (format === 'json') return this.parseJsonText(value, 'JSON');
    const { schemaId, body } = unframe(value, format);
    const fetched = this.schemas.get(schemaId) ?? (await this.fetch(schemaId));
    if (fetched.format !== format) {
      throw new RecordUndecodableError(format, `schema id ${schemaId} is a ${fetched.format} schema`);
    }
    try {
      if (format === 'avro') return fetched.schema.fromBuffer(body);
      if (format === 'json-schema') {
        checkJsonDepth(body.toString('utf8'), this.maxJsonDepth);
        return fetched.schema.fromBuffer(body);
      }
      return this.decodeProtobuf(fetched, body);
    } catch (err) {
      if (err instanceof EventError) throw err;
      const paths = (err as { paths?: unknown }).paths;
      const detail = Array.isArray(paths) && paths.length > 0 ? ` at ${JSON.stringify(paths.flat())}` : '';
      throw new RecordUndecodableError(format, `schema id ${schemaId}: ${(err as Error).message}${detail}`);
    }
  }

  private decodeProtobuf(fetched: FetchedSchema, body: Buffer): unknown {
    // The client's ProtoSchema knows the file's first message only; the message indexes pick the type.
    let type = fetched.schema.message;
    let bytes = body;
    if (this.input.protobufMessageIndexes) {
      const { path, offset } = readMessageIndexes(body);
      type = protobufTypeAt(type, path);
      bytes = body.subarray(offset);
    }
    const message = type.decode(bytes);
    return type.toObject(message, { longs: Number, enums: String, defaults: true });
  }

  private async fetch(id: number): Promise<FetchedSchema> {
    try {
      const fetched = await this.registry!.schemaById(id);
      this.schemas.set(id, fetched);
      return fetched;
    } catch (err) {
      if (err instanceof SchemaNotFound) throw new SchemaUnknownError(id, this.registry!.url);
      throw err;
    }
  }

  private parseJsonText(value: Buffer, what: string): unknown {
    const text = value.toString('utf8');
    checkJsonDepth(text, this.maxJsonDepth);
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new RecordUndecodableError(what, (err as Error).message);
    }
  }

  /** The event's fields, by the mapping (or the record as it is), with the message key checked. */
  private toEventObject(decoded: Decoded, message: RecordLike): unknown {
    const messageKey = message.key?.toString('utf8') || undefined;
    const m = this.mapping;
    if (!m) {
      const r = decoded.record;
      if (r === null || typeof r !== 'object' || Array.isArray(r)) return r;
      const key = (r as Record<string, unknown>)['key'];
      if ((key === undefined || key === null) && messageKey !== undefined) return { ...r, key: messageKey };
      if (messageKey !== undefined && typeof key === 'string' && key !== messageKey) {
        throw new KeyMismatchError(messageKey, key);
      }
      return r;
    }
    const get = (path: string) => lookup(path, decoded, message, messageKey);
    let key = get(m.key);
    if (key === undefined || key === null) {
      if (messageKey === undefined) throw new FieldMissingError('key', m.key);
      key = messageKey;
    } else if (messageKey !== undefined && typeof key === 'string' && key !== messageKey) {
      throw new KeyMismatchError(messageKey, key);
    }
    const ts = get(m.ts);
    if (ts === undefined || ts === null) throw new FieldMissingError('ts', m.ts);
    const event: Record<string, unknown> = { key, ts };
    if (m.features !== undefined) {
      const features = get(m.features);
      if (features === undefined || features === null) throw new FieldMissingError('features', m.features);
      event['features'] = features;
    } else if (this.valuePaths) {
      const values: Record<string, unknown> = {};
      for (const [name, path] of this.valuePaths) {
        const v = get(path);
        if (v === undefined || v === null) throw new FieldMissingError(`values.${name}`, path);
        values[name] = v;
      }
      event['values'] = values;
    } else {
      const r = decoded.record as Record<string, unknown> | null;
      for (const f of ['features', 'values', 'inputs'] as const) if (r?.[f] != null) event[f] = r[f];
    }
    // Optional parts: absent in a record means no id, no reset.
    for (const part of ['id', 'reset'] as const) {
      const path = m[part];
      if (path === undefined) continue;
      const v = get(path);
      if (v !== undefined && v !== null) event[part] = v;
    }
    return event;
  }
}

function lookup(
  path: string,
  decoded: Decoded,
  message: RecordLike,
  messageKey: string | undefined,
): unknown {
  if (path === '$key') return messageKey;
  if (path === '$timestamp') return message.timestamp === undefined ? undefined : Number(message.timestamp);
  if (path.startsWith('$ce.')) return decoded.ce?.[path.slice(4)];
  let v: unknown = decoded.record;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = Object.hasOwn(v, part) ? (v as Record<string, unknown>)[part] : undefined;
  }
  return v;
}

/**
 * A protobufjs Type by Confluent message-index path: top-level messages of the file (in declaration
 * order, found beside `first`, the file's first message), then nested ones.
 */
// biome-ignore lint/suspicious/noExplicitAny: protobufjs reflection objects
export function protobufTypeAt(first: any, path: readonly number[]): any {
  const isType = (o: unknown) =>
    o !== null &&
    typeof o === 'object' &&
    typeof (o as { decode?: unknown }).decode === 'function' &&
    'fields' in o;
  // biome-ignore lint/suspicious/noExplicitAny: protobufjs reflection objects
  const messagesOf = (ns: any): any[] => Object.values(ns?.nested ?? {}).filter(isType);
  let candidates = messagesOf(first.parent);
  // biome-ignore lint/suspicious/noExplicitAny: protobufjs reflection objects
  let type: any;
  for (const index of path) {
    type = candidates[index];
    if (!type) {
      throw new RecordUndecodableError(
        'protobuf',
        `message index path [${path.join(', ')}] names no message of the schema (is kafka.input.protobufMessageIndexes right for this producer?)`,
      );
    }
    candidates = messagesOf(type);
  }
  return type;
}

function ceAttributesFromEnvelope(e: Record<string, unknown>): CloudEventAttributes {
  const ce: Record<string, string> = {};
  for (const [k, v] of Object.entries(e)) {
    if (k === 'data' || k === 'data_base64') continue;
    if (typeof v === 'string') ce[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') ce[k] = String(v);
  }
  if (ce['specversion'] === undefined) {
    throw new RecordUndecodableError('a structured CloudEvent', 'it has no specversion');
  }
  return ce;
}

function safeJson(v: unknown): string | undefined {
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
  } catch {
    return undefined;
  }
}
