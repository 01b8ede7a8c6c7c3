import { ConfigError } from '../errors.js';
import type { KafkaClient, KafkaClientOptions } from './adapter.js';
import { createKafkajsClient } from './kafkajsClient.js';

export type { KafkaClientOptions } from './adapter.js';

/** `"a:9092, b:9092"` → `['a:9092', 'b:9092']`; `ConfigError` when nothing usable is left. */
export function parseBrokers(list: string | readonly string[]): string[] {
  const brokers = (typeof list === 'string' ? list.split(',') : [...list])
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
  if (brokers.length === 0) throw new ConfigError('no Kafka brokers given');
  for (const b of brokers) {
    if (!/^[^\s:]+:\d+$/.test(b)) throw new ConfigError(`Kafka broker '${b}' is not host:port`);
  }
  return brokers;
}

/**
 * The Kafka client every cellstream Kafka module is built on, of the library `options.client`
 * names (default kafkajs). @platformatic/kafka is loaded only when asked for: 2.x on Node >= 22.22,
 * else 1.35 (platformaticLibrary.ts).
 */
export async function createKafka(options: KafkaClientOptions): Promise<KafkaClient> {
  const client = options.client ?? 'kafkajs';
  if (client === 'kafkajs') return createKafkajsClient(options);
  const [{ createPlatformaticClient }, { loadPlatformaticLibrary }] = await Promise.all([
    import('./platformaticClient.js'),
    import('./platformaticLibrary.js'),
  ]);
  return createPlatformaticClient(options, await loadPlatformaticLibrary());
}
