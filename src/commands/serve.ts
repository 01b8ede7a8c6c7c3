import { loadConfig } from '../config/load.js';
import { createLogger } from '../server/logger.js';
import { startServer } from '../server/serve.js';
import { shutdownSignal } from './shutdownSignals.js';

/** The flags `serve` takes; each overrides one configuration key (see docs/configuration.md). */
export interface ServeFlags {
  readonly config?: string;
  readonly model?: string;
  readonly shadow?: string;
  readonly host?: string;
  readonly port?: number;
  readonly state?: string;
  readonly demoFeed?: boolean;
  readonly logLevel?: string;
  readonly kafkaBrokers?: string;
  readonly inputTopic?: string;
  readonly outputTopic?: string;
  readonly groupId?: string;
  readonly deadLetterTopic?: string;
  readonly changelogTopic?: string;
  readonly exactlyOnce?: boolean;
  readonly kafkaClient?: string;
  readonly standbys?: string;
}

/**
 * `cellstream serve`: loads the configuration (defaults, file, environment, flags), starts the
 * server and runs until SIGINT or SIGTERM, then shuts down gracefully and resolves. A signal that
 * arrives while it is still starting is kept: the server stops as soon as it has started.
 */
export async function runServe(flags: ServeFlags): Promise<void> {
  const signalled = shutdownSignal();
  const config = await loadConfig({
    file: flags.config,
    env: process.env,
    flags: {
      'model.path': flags.model,
      'model.shadow': flags.shadow,
      'server.host': flags.host,
      'server.port': flags.port,
      'state.path': flags.state,
      'sources.demo.enabled': flags.demoFeed,
      'log.level': flags.logLevel,
      'kafka.brokers': flags.kafkaBrokers,
      'kafka.inputTopic': flags.inputTopic,
      'kafka.outputTopic': flags.outputTopic,
      'kafka.groupId': flags.groupId,
      'kafka.deadLetterTopic': flags.deadLetterTopic,
      'kafka.changelogTopic': flags.changelogTopic,
      'kafka.exactlyOnce': flags.exactlyOnce,
      'kafka.client': flags.kafkaClient,
      'kafka.standbys': flags.standbys === undefined ? undefined : Number(flags.standbys),
    },
  });
  const logger = createLogger(config.log.level);
  logger.info({ model: config.model.path }, 'starting: loading the model and opening the state store');
  const server = await startServer(config, { logger });
  // In Kafka mode, a consumer lost for good (KAFKA_CONSUMER_LOST) ends serve with a non-zero exit,
  // so that its supervisor restarts it.
  const lost = server.kafka?.pipeline.lost;
  try {
    logger.info({ signal: await (lost ? Promise.race([signalled, lost]) : signalled) }, 'received signal');
  } catch (err) {
    logger.fatal({ err }, (err as Error).message);
    await server.close();
    throw err;
  }
  await server.close();
}
