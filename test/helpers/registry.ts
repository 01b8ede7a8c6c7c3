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

/** The maintained client, as a producer in Node would use it. */
export const testRegistry = () => new SchemaRegistry({ host: registryUrl });

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
