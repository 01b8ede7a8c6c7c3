import { ConfigError } from '../errors.js';
import type { KafkaClient, KafkaClientOptions } from './adapter.js';

/** The @platformatic/kafka implementation of cellstream's Kafka adapter. */
export function createPlatformaticClient(_options: KafkaClientOptions): KafkaClient {
  throw new ConfigError('kafka.client platformatic is not implemented yet: use kafkajs');
}
