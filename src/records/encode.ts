import { ConfigError } from '../errors.js';
import type { Prediction } from '../events/types.js';
import type { OutputSpec } from '../features/spec.js';
import type { OutgoingMessage } from '../kafka/adapter.js';
import { ceHeaders } from './cloudEvents.js';
import type { RecordOutputConfig } from './config.js';
import { type RegistryClient, SchemaNotFound } from './registry.js';
import { frame } from './wire.js';

/** What the prediction schema is generated from: the model's output width and its spec's output. */
export interface PredictionShape {
  readonly outputs: number;
  readonly output?: OutputSpec;
}

/** The subject a schema is registered under, by `subjectNameStrategy`. */
export function subjectName(config: RecordOutputConfig, topic: string): string {
  switch (config.subjectNameStrategy) {
    case 'topic':
      return `${topic}-value`;
    case 'record':
      return config.recordName;
    case 'topic-record':
      return `${topic}-${config.recordName}`;
  }
}

/**
 * The Avro schema of a prediction: the fixed fields, then the fields the spec's output decoding
 * adds. `ts` is a double because an event's ts may carry fractions of a millisecond.
 */
export function predictionAvroSchema(config: RecordOutputConfig, shape: PredictionShape): object {
  const dot = config.recordName.lastIndexOf('.');
  const fields: object[] = [
    { name: 'key', type: 'string' },
    { name: 'ts', type: 'double' },
    { name: 'seq', type: 'long' },
    { name: 'model', type: 'string' },
    { name: 'output', type: { type: 'array', items: 'double' } },
  ];
  const out = shape.output;
  if (out?.kind === 'classes') {
    fields.push({ name: 'label', type: 'string' });
    fields.push({ name: 'probabilities', type: { type: 'map', values: 'double' } });
  } else if (out?.kind === 'regression') {
    fields.push({
      name: out.name ?? 'value',
      type: shape.outputs === 1 ? 'double' : { type: 'array', items: 'double' },
    });
  }
  return {
    type: 'record',
    name: dot < 0 ? config.recordName : config.recordName.slice(dot + 1),
    ...(dot < 0 ? {} : { namespace: config.recordName.slice(0, dot) }),
    doc: 'A cellstream prediction (generated from the model and its feature spec)',
    fields,
  };
}

/** The JSON Schema of a prediction, the same fields as the Avro one. */
export function predictionJsonSchema(config: RecordOutputConfig, shape: PredictionShape): object {
  const number = { type: 'number' };
  const properties: Record<string, object> = {
    key: { type: 'string' },
    ts: number,
    seq: { type: 'integer' },
    model: { type: 'string' },
    output: { type: 'array', items: number },
  };
  const out = shape.output;
  if (out?.kind === 'classes') {
    properties['label'] = { type: 'string' };
    properties['probabilities'] = { type: 'object', additionalProperties: number };
  } else if (out?.kind === 'regression') {
    properties[out.name ?? 'value'] = shape.outputs === 1 ? number : { type: 'array', items: number };
  }
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: config.recordName,
    type: 'object',
    properties,
    required: Object.keys(properties),
  };
}

/**
 * Writes predictions as `kafka.output` says: JSON text (today's), or Avro / JSON Schema in the
 * Confluent wire format with the generated schema registered (or looked up) once at start; wrapped
 * as a CloudEvent when asked. `encode` is synchronous: the sink's batches never wait on the registry.
 */
export class PredictionEncoder {
  private constructor(
    private readonly config: RecordOutputConfig,
    private readonly toValue: (p: Prediction) => Buffer | string,
    private readonly contentType: string,
    /** The schema id predictions are framed with (undefined for plain JSON). */
    readonly schemaId: number | undefined,
  ) {}

  static async create(options: {
    readonly output: RecordOutputConfig;
    readonly registry?: RegistryClient;
    readonly topic: string;
    readonly shape: PredictionShape;
  }): Promise<PredictionEncoder> {
    const { output, registry, topic, shape } = options;
    if (output.cloudEvents === 'structured' && output.format !== 'json') {
      throw new RangeError('kafka.output.cloudEvents structured needs kafka.output.format json');
    }
    if (output.format === 'json') {
      return new PredictionEncoder(output, (p) => JSON.stringify(p), 'application/json', undefined);
    }
    if (!registry) throw new RangeError(`kafka.output.format ${output.format} needs kafka.registry`);
    const subject = subjectName(output, topic);
    const schema =
      output.format === 'avro' ? predictionAvroSchema(output, shape) : predictionJsonSchema(output, shape);
    let id: number;
    try {
      id = output.autoRegister
        ? await registry.register(output.format, JSON.stringify(schema), subject)
        : await registry.latestId(subject);
    } catch (err) {
      if (!(err instanceof SchemaNotFound)) throw err;
      throw new ConfigError(
        `no schema is registered under subject '${subject}' at ${registry.url}, and kafka.output.autoRegister is false: register the predictions' schema there first, or set autoRegister true`,
      );
    }
    const fetched = await registry.schemaById(id);
    if (fetched.format !== output.format) {
      throw new RangeError(
        `schema id ${id} of subject '${subject}' is ${fetched.format}, not ${output.format}`,
      );
    }
    const codec = fetched.schema;
    if (output.format === 'avro') {
      return new PredictionEncoder(output, (p) => frame(id, codec.toBuffer(p)), 'application/avro', id);
    }
    return new PredictionEncoder(output, (p) => frame(id, codec.toBuffer(p)), 'application/json', id);
  }

  encode(p: Prediction): OutgoingMessage {
    const value = this.toValue(p);
    const mode = this.config.cloudEvents;
    if (mode === 'off') return { key: p.key, value };
    const attributes: Record<string, string> = {
      specversion: '1.0',
      // Stable across redeliveries: a repeated prediction is the same event.
      id: `${p.model}/${p.key}/${p.seq}`,
      source: this.config.cloudEventsSource,
      type: this.config.cloudEventsType,
      subject: p.key,
    };
    if (Number.isFinite(p.ts) && Math.abs(p.ts) <= 8.64e15) attributes['time'] = new Date(p.ts).toISOString();
    if (mode === 'binary') return { key: p.key, value, headers: ceHeaders(attributes, this.contentType) };
    return {
      key: p.key,
      value: JSON.stringify({ ...attributes, datacontenttype: 'application/json', data: p }),
      headers: { 'content-type': 'application/cloudevents+json; charset=UTF-8' },
    };
  }
}
