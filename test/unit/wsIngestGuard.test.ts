import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { eventLimits } from '../../src/events/limits.js';
import type { Principal } from '../../src/server/auth.js';
import type { IngestTarget } from '../../src/server/ingestTarget.js';
import { IngestConnection, type IngestLimits } from '../../src/server/wsIngest.js';
import { closed, connect, nextMessages } from '../helpers/serve.js';

const LIMITS = {
  eventsPerSecond: 1e6,
  burst: 1e6,
  maxInFlight: 100,
  maxJsonDepth: 32,
  maxOutboundBytes: 1 << 20,
  maxEchoBytes: 1024,
};
const ANYONE: Principal = { name: 'anonymous', scopes: new Set(['ingest']) };

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

/**
 * A real WebSocket server on loopback whose connections are IngestConnections over `target`;
 * logic under test here is the connection's guard, so the engine is a stand-in.
 */
async function serve(
  target: IngestTarget,
  errors: unknown[],
  limits: IngestLimits = LIMITS,
): Promise<string> {
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  wss.on(
    'connection',
    (ws) => new IngestConnection(ws, ANYONE, target, limits, { onError: (e) => errors.push(e) }),
  );
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  stop = async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => http.close(r));
  };
  return `ws://127.0.0.1:${(http.address() as AddressInfo).port}`;
}

describe('IngestConnection guard', () => {
  it('an unexpected exception closes that connection with 1011 and is reported; other connections go on', async () => {
    const errors: unknown[] = [];
    const target: IngestTarget = {
      submit(event, done) {
        if (event.key === 'boom') throw new Error('engine bug');
        done({ kind: 'accepted', key: event.key, topic: 't', partition: 0, offset: '1' });
      },
    };
    const url = await serve(target, errors);
    const victim = await connect(url);
    const bystander = await connect(url);
    const closing = closed(victim);
    victim.send(JSON.stringify({ key: 'boom', ts: 1, features: [1] }));
    expect(await closing).toEqual({ code: 1011, reason: 'internal error' });
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe('engine bug');

    const answers = nextMessages(bystander, 1);
    bystander.send(JSON.stringify({ key: 'fine', ts: 1, features: [1] }));
    expect(await answers).toEqual([{ accepted: true, key: 'fine', topic: 't', partition: 0, offset: '1' }]);
    bystander.close();
  });

  it('an exception while rendering an answer the engine gives later is contained too', async () => {
    const errors: unknown[] = [];
    const target: IngestTarget = {
      submit(_event, done) {
        // A prediction that cannot be serialized: rendering the answer throws.
        const prediction = {
          toJSON() {
            throw new Error('unserializable');
          },
        };
        setTimeout(() => expect(() => done({ kind: 'prediction', prediction } as never)).not.toThrow(), 5);
      },
    };
    const url = await serve(target, errors);
    const ws = await connect(url);
    const closing = closed(ws);
    ws.send(JSON.stringify({ key: 'k', ts: 1, features: [1] }));
    expect((await closing).code).toBe(1011);
    expect(errors).toHaveLength(1);
  });
});

describe('IngestConnection: the engine’s event limits at the edge', () => {
  it('answers an event beyond a limit with the engine’s code at once, and never submits it', async () => {
    const submitted: string[] = [];
    const target: IngestTarget = {
      submit(event, done) {
        submitted.push(event.key);
        done({ kind: 'accepted', key: event.key, topic: 't', partition: 0, offset: '1' });
      },
    };
    const events = eventLimits({ maxKeyBytes: 8, maxIdBytes: 4, maxTsAheadMs: 60_000 });
    const url = await serve(target, [], { ...LIMITS, events });
    const ws = await connect(url);
    const now = Date.now();
    const answers = nextMessages(ws, 4);
    ws.send(
      JSON.stringify([
        { key: 'k'.repeat(9), ts: now, features: [1] },
        { key: 'fine', id: 'abcde', ts: now, features: [1] },
        { key: 'fine', ts: now + 3_600_000, features: [1] },
        { key: 'fine', id: 'abcd', ts: now, features: [1] },
      ]),
    );
    const got = await answers;
    expect(got.map((a) => (a['error'] as { code?: string } | undefined)?.code ?? 'accepted')).toEqual([
      'EVENT_KEY_TOO_LONG',
      'EVENT_ID_TOO_LONG',
      'EVENT_TS_IN_FUTURE',
      'accepted',
    ]);
    expect(submitted).toEqual(['fine']);
    ws.close();
  });
});
