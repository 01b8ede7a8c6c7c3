import { z } from 'zod';

/**
 * How records on the input topic are written, and which of their fields make an event
 * (`kafka.input`, docs/configuration.md). The default is today's: a JSON event in the value.
 */
export const recordInputSchema = z.strictObject({
  /** `json`: the value is JSON text. The others: Confluent wire format through `kafka.registry`. */
  format: z.enum(['json', 'avro', 'json-schema', 'protobuf']).default('json'),
  /**
   * CloudEvents Kafka binding. `binary`: attributes in `ce_` headers, the value is the data.
   * `structured`: the value is a JSON CloudEvent whose `data` is the record. `auto`: structured
   * when the content-type header says `application/cloudevents+json`, binary when `ce_specversion`
   * is present, plain otherwise. `off`: headers are not read.
   */
  cloudEvents: z.enum(['off', 'binary', 'structured', 'auto']).default('off'),
  /**
   * Protobuf only: the value carries the message indexes after the schema id, as Confluent's
   * (Java, Go, .NET, librdkafka) serializers write them. `false` for producers that write none
   * (e.g. `@kafkajs/confluent-schema-registry`'s `encode`), which always means the schema's first message.
   */
  protobufMessageIndexes: z.boolean().default(true),
  /**
   * Where the event's parts are in a decoded record. Paths are dotted field names; `$key` is the
   * message key, `$timestamp` the record's timestamp, `$ce.<attribute>` a CloudEvents attribute.
   * Absent: the record itself is read as an event (`key`, `ts`, `features` | `values` | `inputs`, `id`).
   */
  mapping: z
    .strictObject({
      key: z.string().min(1).default('key'),
      ts: z.string().min(1).default('ts'),
      /** A field holding the model's input vector (an array of numbers). */
      features: z.string().min(1).optional(),
      /**
       * Named values for the feature spec: a list of names (each read from the field of that
       * name), a map of name → path, or `spec` for every named (not derived) feature of the model's spec.
       */
      values: z
        .union([
          z.literal('spec'),
          z.array(z.string().min(1)).min(1),
          z.record(z.string(), z.string().min(1)),
        ])
        .optional(),
      id: z.string().min(1).optional(),
      /** A boolean field: start a new sequence for the key before this event. */
      reset: z.string().min(1).optional(),
    })
    .refine((m) => !(m.features !== undefined && m.values !== undefined), 'map features or values, not both')
    .optional(),
});

/** A Confluent-compatible schema registry (Confluent, Apicurio's `/apis/ccompat/v7`, Karapace). */
export const registrySchema = z.strictObject({
  url: z.string().url('the registry URL, e.g. http://127.0.0.1:8081 or http://host:8080/apis/ccompat/v7'),
  /** Attempts per request before the batch is given up on and fetched again. */
  retries: z.number().int().min(0).max(20).default(3),
});

/** How predictions are written to the output topic (`kafka.output`). */
export const recordOutputSchema = z.strictObject({
  format: z.enum(['json', 'avro', 'json-schema']).default('json'),
  /** Subject the schema is registered under: `<topic>-value`, `<record>`, or `<topic>-<record>`. */
  subjectNameStrategy: z.enum(['topic', 'record', 'topic-record']).default('topic'),
  /** Register the generated schema at start; `false`: it must be registered already (the latest version is used). */
  autoRegister: z.boolean().default(true),
  /** Full name of the Avro record / title of the JSON schema. */
  recordName: z
    .string()
    .regex(
      /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/,
      'a dotted Avro name, e.g. dev.cellstream.Prediction',
    )
    .default('dev.cellstream.Prediction'),
  /** CloudEvents on output: `binary` (`ce_` headers), `structured` (JSON envelope; json format only), or `off`. */
  cloudEvents: z.enum(['off', 'binary', 'structured']).default('off'),
  cloudEventsSource: z.string().min(1).default('cellstream'),
  cloudEventsType: z.string().min(1).default('dev.cellstream.prediction'),
});

export type RecordInputConfig = z.infer<typeof recordInputSchema>;
export type RecordInputMapping = NonNullable<RecordInputConfig['mapping']>;
export type RegistryConfig = z.infer<typeof registrySchema>;
export type RecordOutputConfig = z.infer<typeof recordOutputSchema>;

/** Parses `input` with every default filled in (for library callers that pass partial settings). */
export const inputConfig = (input: z.input<typeof recordInputSchema> = {}): RecordInputConfig =>
  recordInputSchema.parse(input);
export const outputConfig = (output: z.input<typeof recordOutputSchema> = {}): RecordOutputConfig =>
  recordOutputSchema.parse(output);
