import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { sha256 } from '../../src/server/auth.js';
import { createLogger } from '../../src/server/logger.js';
import { type RunningServer, startServer } from '../../src/server/serve.js';
import { connect, exchange, modelFile, startTestServer, upgradeStatus } from '../helpers/serve.js';

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const INGEST = 'ingest-token-0123456789';
const TOKENS = [
  { name: 'ingester', sha256: sha256(INGEST).toString('hex'), scopes: ['ingest'] },
  { name: 'reader', env: 'TEST_READER_TOKEN', scopes: ['subscribe', 'read'] },
];
const ENV = { TEST_READER_TOKEN: 'reader-token-0123456789' };
const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });

/** Upgrades the server refused, by reason, from its metrics. */
async function refusals(s: RunningServer): Promise<string> {
  return s.metrics.registry.getSingleMetricAsString('cellstream_connections_rejected_total');
}

describe('serve: security', () => {
  it('refuses a missing or unknown token with 401 before the handshake: no socket is opened', async () => {
    const s = await startTestServer({ model: { path: await modelFile() }, auth: { tokens: TOKENS } }, ENV);
    server = s;
    expect(await upgradeStatus(s.ws('/ingest'))).toBe(401);
    expect(await upgradeStatus(s.ws('/ingest'), bearer('wrong-token-0123456789'))).toBe(401);
    expect(await upgradeStatus(s.ws('/subscribe?access_token=wrong-token-0123456789'))).toBe(401);
    expect(await upgradeStatus(s.ws('/subscribe'), { headers: { Authorization: 'Basic abc' } })).toBe(401);
    expect(s.subscriptions.size).toBe(0);
    expect(await refusals(s)).toMatch(/reason="unauthorized"} 4/);
    const metrics = await s.metrics.registry.metrics();
    expect(metrics).toMatch(/cellstream_ingest_connections 0/);
    expect(metrics).toMatch(/cellstream_subscribers 0/);
  });

  it('accepts tokens given as sha256 digests, from the environment, or as access_token; scopes decide the endpoint', async () => {
    const s = await startTestServer({ model: { path: await modelFile() }, auth: { tokens: TOKENS } }, ENV);
    server = s;
    expect(await upgradeStatus(s.ws('/ingest'), bearer(INGEST))).toBe(101);
    expect(await upgradeStatus(s.ws(`/subscribe?access_token=${ENV.TEST_READER_TOKEN}`))).toBe(101);
    // Valid tokens without the endpoint's scope.
    expect(await upgradeStatus(s.ws('/subscribe'), bearer(INGEST))).toBe(403);
    expect(await upgradeStatus(s.ws('/ingest'), bearer(ENV.TEST_READER_TOKEN))).toBe(403);
    expect(await refusals(s)).toMatch(/reason="forbidden"} 2/);

    // The HTTP key look-up wants the read scope.
    const ingest = await connect(s.ws('/ingest'), bearer(INGEST));
    await exchange(ingest, [{ key: 'k', ts: 5, features: [1, 2, 3] }]);
    ingest.close();
    expect((await fetch(`${s.url}/v1/keys/k`)).status).toBe(401);
    expect((await fetch(`${s.url}/v1/keys/k`, bearer(INGEST))).status).toBe(403);
    const res = await fetch(`${s.url}/v1/keys/k`, bearer(ENV.TEST_READER_TOKEN));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ key: 'k', seq: 1, ts: 5 });
  });

  it('refuses a foreign browser Origin with 403, allows its own and the configured ones', async () => {
    const s = await startTestServer({
      model: { path: await modelFile() },
      server: { allowedOrigins: ['https://dash.example.com'] },
    });
    server = s;
    const host = new URL(s.url).host;
    expect(await upgradeStatus(s.ws('/subscribe'), { origin: 'https://evil.example.net' })).toBe(403);
    expect(await upgradeStatus(s.ws('/ingest'), { origin: 'http://localhost:1' })).toBe(403);
    expect(await upgradeStatus(s.ws('/subscribe'), { origin: `http://${host}` })).toBe(101);
    expect(await upgradeStatus(s.ws('/subscribe'), { origin: 'https://dash.example.com' })).toBe(101);
    expect(await upgradeStatus(s.ws('/subscribe'))).toBe(101);
    expect(await refusals(s)).toMatch(/reason="origin"} 2/);
  });

  it('refuses to start on a non-loopback address without tokens unless allowInsecure is set', async () => {
    const config = parseConfig([
      {
        values: {
          model: { path: await modelFile() },
          state: { store: 'memory' },
          server: { host: '0.0.0.0', port: 0 },
        },
        source: () => 'test',
      },
    ]);
    const logger = createLogger('silent');
    const refused = startServer(config, { logger });
    await expect(refused).rejects.toThrow(ConfigError);
    await expect(refused).rejects.toThrow(/allowInsecure: true/);
    server = await startServer({ ...config, server: { ...config.server, allowInsecure: true } }, { logger });
    expect(server.port).toBeGreaterThan(0);
  });

  it('names a token whose environment variable is not set', async () => {
    await expect(
      startTestServer({ model: { path: await modelFile() }, auth: { tokens: TOKENS } }, {}),
    ).rejects.toThrow(
      /auth\.tokens\.1\.env: token 'reader' reads environment variable TEST_READER_TOKEN, which is not set/,
    );
  });
});
