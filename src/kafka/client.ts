import { Kafka, type KafkaConfig, logLevel } from 'kafkajs';
import { ConfigError } from '../errors.js';

export interface KafkaClientOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  readonly clientId?: string;
  /** kafkajs log level; default `WARN`. kafkajs logs JSON lines to stderr. */
  readonly logLevel?: logLevel;
  /** Extra kafkajs settings (ssl, sasl, timeouts). */
  readonly extra?: Omit<KafkaConfig, 'brokers' | 'clientId' | 'logLevel'>;
}

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

/** The kafkajs client every cellstream Kafka module is built on. */
export function createKafka(options: KafkaClientOptions): Kafka {
  return new Kafka({
    ...options.extra,
    clientId: options.clientId ?? 'cellstream',
    brokers: [...options.brokers],
    logLevel: options.logLevel ?? logLevel.WARN,
  });
}
