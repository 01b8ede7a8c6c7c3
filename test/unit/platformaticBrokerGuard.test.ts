// The guard against @platformatic/kafka 1.35's unchecked broker look-up, on the library's own
// clients (no broker needed: the look-up fails before any connection).
import { Admin, Producer } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { guardMissingBrokers } from '../../src/kafka/platformaticBrokerGuard.js';

const options = { clientId: 'guard-test', bootstrapBrokers: ['127.0.0.1:9'], retries: 0 };

describe('guardMissingBrokers', () => {
  it('the unguarded pool throws on a broker missing from the metadata (why the guard exists)', async () => {
    const admin = new Admin(options);
    try {
      expect(() => admin.connections.get(undefined as never, () => {})).toThrow(TypeError);
    } finally {
      await admin.close();
    }
  });

  it('makes that look-up a retriable network error that drops the cached metadata', async () => {
    for (const client of [new Admin(options), new Producer(options)]) {
      guardMissingBrokers(client);
      let cleared = 0;
      const clear = client.clearMetadata.bind(client);
      client.clearMetadata = () => {
        cleared++;
        clear();
      };
      try {
        const error = await new Promise<unknown>((resolve) =>
          client.connections.get(undefined as never, (err) => resolve(err)),
        );
        expect(error).toMatchObject({ code: 'PLT_KFK_NETWORK', canRetry: true, hasStaleMetadata: true });
        await expect(client.connections.get({ host: undefined, port: 1 } as never)).rejects.toMatchObject({
          code: 'PLT_KFK_NETWORK',
        });
        expect(cleared).toBe(2);
      } finally {
        await client.close();
      }
    }
  });

  it('leaves the look-up of a known broker to the pool', async () => {
    const admin = guardMissingBrokers(new Admin(options));
    try {
      // Nothing listens on port 9: the pool's own connection error, not the guard's.
      const error = await new Promise<unknown>((resolve) =>
        admin.connections.get({ host: '127.0.0.1', port: 9 }, (err) => resolve(err)),
      );
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).not.toMatch(/missing from the cluster metadata/);
    } finally {
      await admin.close();
    }
  });
});
