import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { RegistryUnavailableError } from '../errors.js';
import type { RegistryConfig } from './config.js';

/** The kinds of schema a registry holds, as `kafka.input.format` names them. */
export type SchemaFormat = 'avro' | 'json-schema' | 'protobuf';

/** A schema fetched by id: its kind and the client's parsed form (avsc Type, ajv validator, protobufjs Type). */
export interface FetchedSchema {
  readonly format: SchemaFormat;
  // biome-ignore lint/suspicious/noExplicitAny: the client's schema classes are not exported as types
  readonly schema: any;
}

/** A schema id the registry answered "not found" for. */
export class SchemaNotFound extends Error {}

const FORMATS: Record<string, SchemaFormat> = {
  [SchemaType.AVRO]: 'avro',
  [SchemaType.JSON]: 'json-schema',
  [SchemaType.PROTOBUF]: 'protobuf',
};

/**
 * The registry calls cellstream makes, through `@kafkajs/confluent-schema-registry` (which caches
 * schemas by id). A "not found" answer is the record's fault (`SchemaNotFound`); anything else
 * (no answer, a 5xx) is the registry's and throws `RegistryUnavailableError`, so the batch is
 * fetched again rather than dead-lettered.
 */
export class RegistryClient {
  readonly url: string;
  readonly client: SchemaRegistry;

  constructor(config: RegistryConfig) {
    this.url = config.url.replace(/\/+$/, '');
    this.client = new SchemaRegistry({
      host: this.url,
      clientId: 'cellstream',
      retry: { retries: config.retries, initialRetryTimeInSecs: 0.2, maxRetryTimeInSecs: 2 },
    });
  }

  async schemaById(id: number): Promise<FetchedSchema> {
    try {
      // biome-ignore lint/suspicious/noExplicitAny: _getSchema gives the schema's type beside it; getSchema does not
      const { type, schema } = await (this.client as any)._getSchema(id);
      const format = FORMATS[type as string];
      if (!format) throw new SchemaNotFound(`schema id ${id} has a type cellstream does not read (${type})`);
      return { format, schema };
    } catch (err) {
      throw this.classify(err, `fetching schema id ${id}`);
    }
  }

  /** Registers `schema` under `subject` (or finds it there) and returns its id. */
  async register(format: SchemaFormat, schema: string, subject: string): Promise<number> {
    const type =
      format === 'avro' ? SchemaType.AVRO : format === 'json-schema' ? SchemaType.JSON : SchemaType.PROTOBUF;
    try {
      const { id } = await this.client.register({ type, schema } as never, { subject });
      return id;
    } catch (err) {
      throw this.classify(err, `registering a schema under subject '${subject}'`);
    }
  }

  /** The id of the latest schema registered under `subject`. */
  async latestId(subject: string): Promise<number> {
    try {
      return await this.client.getLatestSchemaId(subject);
    } catch (err) {
      throw this.classify(err, `looking up the latest schema of subject '${subject}'`);
    }
  }

  private classify(err: unknown, doing: string): Error {
    if (err instanceof SchemaNotFound) return err;
    const status = (err as { status?: unknown }).status;
    if (status === 404) return new SchemaNotFound((err as Error).message);
    return new RegistryUnavailableError(
      `the schema registry at ${this.url} failed ${doing}: ${(err as Error).message}; check that it runs and kafka.registry.url`,
      { cause: err },
    );
  }
}
