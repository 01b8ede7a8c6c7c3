// Helpers of the schema-registry tests: a real registry at SCHEMA_REGISTRY_URL (they fail, never
// skip, without one: scripts/registry/with-registry.sh or npm test starts Apicurio Registry).
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';

export const registryUrl =
  process.env.SCHEMA_REGISTRY_URL ??
  `http://127.0.0.1:${process.env.REGISTRY_PORT ?? '18081'}/apis/ccompat/v7`;

export async function requireRegistry(): Promise<void> {
  try {
    const res = await fetch(`${registryUrl}/subjects`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  } catch (err) {
    throw new Error(
      `No schema registry answers at ${registryUrl} (SCHEMA_REGISTRY_URL): ${(err as Error).message}. ` +
        'Run the tests with one: scripts/registry/with-registry.sh npx vitest run, or npm test.',
    );
  }
}

let shared: SchemaRegistry | undefined;
/**
 * The maintained client, as a producer in Node would use it: one per test process, as a producer
 * keeps one. A new client per record fetched and compiled its schema for every record (40 s for
 * 285 JSON Schema records on a loaded machine); schema ids never change, so one cache is safe.
 */
export const testRegistry = (): SchemaRegistry => {
  shared ??= new SchemaRegistry({ host: registryUrl });
  return shared;
};

export async function registerSchema(
  type: 'AVRO' | 'JSON' | 'PROTOBUF',
  schema: string | object,
  subject: string,
): Promise<number> {
  const text = typeof schema === 'string' ? schema : JSON.stringify(schema);
  const { id } = await testRegistry().register(
    { type: SchemaType[type as keyof typeof SchemaType], schema: text } as never,
    { subject },
  );
  return id;
}
