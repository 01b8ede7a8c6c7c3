import { type Connection, NetworkError } from '@platformatic/kafka';

/** What every @platformatic/kafka client (admin, producer, consumer) has that the guard needs. */
export interface GuardableClient {
  readonly connections: {
    get(broker: unknown, callback?: (error: Error | null, connection?: Connection) => void): unknown;
  };
  clearMetadata(): void;
}

/**
 * @platformatic/kafka 1.35 (the last release for Node 20) looks up the broker of a coordinator or
 * a partition leader in its cached cluster metadata and asks its connection pool for it without
 * checking it was found. Metadata taken while the broker was coming back (a paused or restarted
 * broker is briefly left out of the broker list) lacks it, and the pool then throws a TypeError
 * from inside a socket callback: an uncaught exception that ended the process (seen in the
 * broker-pause fault test, in `listConsumerGroupOffsets`). 2.x checks this itself (its pool
 * answers a retriable NetworkError with `hasStaleMetadata`), so the loader applies this on 1.35
 * only (platformaticLibrary.ts).
 *
 * This makes the pool's look-up of a missing broker fail as a retriable network error that also
 * drops the cached metadata, so the operation fails or is retried, and the next one reads fresh
 * metadata. Call it once on every 1.35 client made.
 */
export function guardMissingBrokers<T extends GuardableClient>(client: T): T {
  const pool = client.connections;
  const get = pool.get.bind(pool);
  pool.get = (broker: unknown, callback?: (error: Error | null, connection?: Connection) => void) => {
    const b = broker as { host?: unknown; port?: unknown } | null | undefined;
    if (b == null || b.host == null || b.port == null) {
      client.clearMetadata();
      const error = new NetworkError(
        'the broker is missing from the cluster metadata the client holds (it was coming back); the metadata is read again',
        { hasStaleMetadata: true },
      );
      if (callback) {
        callback(error);
        return undefined;
      }
      return Promise.reject(error);
    }
    return get(broker, callback);
  };
  return client;
}
