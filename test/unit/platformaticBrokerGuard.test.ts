// The guard against @platformatic/kafka 1.35's unchecked broker look-up, on the library's own
// clients (no broker needed: the look-up fails before any connection), and why 2.x goes without it.
import { Admin, Producer } from '@platformatic/kafka';
import { Admin as Admin2 } from '@platformatic/kafka-2';
import { describe, expect, it } from 'vitest';
import { guardMissingBrokers } from '../../src/kafka/platformaticBrokerGuard.js';
import { loadPlatformaticLibrary } from '../../src/kafka/platformaticLibrary.js';

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

  it("2.x's pool answers that look-up itself with a retriable error, so 2.x clients go unguarded", async () => {
    const admin = new Admin2(options);
    const get = admin.connections.get;
    try {
      const error = await new Promise<unknown>((resolve) =>
        admin.connections.get(undefined as never, (err) => resolve(err)),
      );
      expect(error).toMatchObject({ code: 'PLT_KFK_NETWORK', canRetry: true, hasStaleMetadata: true });
      const loaded = await loadPlatformaticLibrary('24.11.1');
      expect(loaded.major).toBe(2);
      expect(loaded.guard(admin).connections.get).toBe(get);
    } finally {
      // With a callback: 2.x's promise form needs Promise.withResolvers, which Node 20 lacks (this
      // test runs there too; the loader never picks 2.x on it).
      await new Promise<void>((resolve, reject) => admin.close((err) => (err ? reject(err) : resolve())));
    }
  });

  it('the loader guards the clients of 1.35', async () => {
    const loaded = await loadPlatformaticLibrary('20.20.2');
    expect(loaded.major).toBe(1);
    const admin = loaded.guard(new Admin(options));
    try {
      await expect(admin.connections.get(undefined as never)).rejects.toMatchObject({
        code: 'PLT_KFK_NETWORK',
        hasStaleMetadata: true,
      });
    } finally {
      await admin.close();
    }
  });
});
