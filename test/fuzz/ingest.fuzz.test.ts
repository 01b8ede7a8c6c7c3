// Property-based test of the /ingest protocol against a real server on loopback with real ws
// clients: random frames (valid events, arrays, garbage, deep nesting, large, binary, unicode keys).
// Invariants: the server lives; every event gets exactly one answer, in order; state changes only
// for events answered with a prediction; another client's answers are unaffected.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { jsonDepth } from '../../src/events/jsonDepth.js';
import type { RunningServer } from '../../src/server/serve.js';
import { fuzzParams } from '../helpers/fuzz.js';
import { connect, exchange, modelFile, nextMessages, startTestServer } from '../helpers/serve.js';

const MAX_DEPTH = 32;
/** Generous per run, for `npm run fuzz` too. */
const TIMEOUT_MS = 60_000 + 200 * Number(process.env.CELLSTREAM_FUZZ_RUNS ?? 200);

let server: RunningServer & { ws: (path: string) => string };
let bystander: WebSocket;
let bystanderSeq = 0;
let run = 0;

beforeAll(async () => {
  server = await startTestServer({
    model: { path: await modelFile() },
    sources: { websocket: { eventsPerSecond: 1e9, burst: 10_000_000, maxJsonDepth: MAX_DEPTH } },
  });
  bystander = await connect(server.ws('/ingest'));
});
afterAll(async () => {
  bystander?.close();
  await server?.close();
});

type Frame = { kind: 'text'; text: string } | { kind: 'binary'; bytes: Uint8Array };

const key = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 });
const feature = fc.double({ noNaN: true, noDefaultInfinity: true });
/** Events a client would send, some of them wrong: bad widths, missing fields, ids, resets. */
const event = fc.record(
  {
    key,
    ts: fc.oneof(fc.integer({ min: 0, max: 2_000_000_000_000 }), fc.constant('2024-11-27T10:00:00Z')),
    features: fc.array(feature, { minLength: 2, maxLength: 4 }),
    id: fc.string({ minLength: 1, maxLength: 4 }),
    reset: fc.boolean(),
  },
  { requiredKeys: ['key', 'features'] },
);
const item = fc.oneof(
  { weight: 5, arbitrary: event },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  {
    weight: 1,
    arbitrary: fc.record({ key, ts: fc.nat(), features: fc.constant([1, 2, 3]), x: fc.jsonValue() }),
  },
);
const nestedText = fc
  .tuple(fc.integer({ min: 1, max: 3000 }), fc.constantFrom('[', '{"a":'), fc.boolean())
  .map(([depth, open, closed]) => {
    const close = open === '[' ? ']' : '}';
    const inner = open === '[' ? '' : '1';
    return `${open.repeat(depth)}${inner}${closed ? close.repeat(depth) : ''}`;
  });
const frame: fc.Arbitrary<Frame> = fc.oneof(
  { weight: 4, arbitrary: item.map((i) => ({ kind: 'text' as const, text: JSON.stringify(i) })) },
  {
    weight: 4,
    arbitrary: fc
      .array(item, { maxLength: 20 })
      .map((items) => ({ kind: 'text' as const, text: JSON.stringify(items) })),
  },
  { weight: 2, arbitrary: fc.string({ maxLength: 200 }).map((text) => ({ kind: 'text' as const, text })) },
  { weight: 2, arbitrary: nestedText.map((text) => ({ kind: 'text' as const, text })) },
  {
    weight: 1,
    arbitrary: fc.tuple(key, fc.integer({ min: 1000, max: 50_000 })).map(([k, n]) => ({
      kind: 'text' as const,
      text: JSON.stringify({ key: k, ts: 1, features: [1, 2, 3], padding: 'x'.repeat(n) }),
    })),
  },
  {
    weight: 1,
    arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ kind: 'binary' as const, bytes })),
  },
);

/** The events a frame holds as the protocol counts them: one answer each, in order. */
function itemsOf(f: Frame): unknown[] {
  if (f.kind === 'binary') return [undefined];
  if (jsonDepth(f.text, MAX_DEPTH) > MAX_DEPTH) return [undefined];
  try {
    const parsed: unknown = JSON.parse(f.text);
    return Array.isArray(parsed) ? parsed : [parsed];
  } catch {
    return [undefined];
  }
}

/** Keys of each run are prefixed by the run's number, so each run starts from no state. */
function prefixKeys(f: Frame, prefix: string): Frame {
  if (f.kind === 'binary') return f;
  try {
    const parsed: unknown = JSON.parse(f.text);
    const fix = (v: unknown) =>
      v !== null && typeof v === 'object' && typeof (v as { key?: unknown }).key === 'string'
        ? { ...(v as object), key: `${prefix}${(v as { key: string }).key}` }
        : v;
    return { kind: 'text', text: JSON.stringify(Array.isArray(parsed) ? parsed.map(fix) : fix(parsed)) };
  } catch {
    return f;
  }
}

describe('fuzz: /ingest protocol', () => {
  it(
    'answers every event once, in order; only predictions change state; the server and other clients are unaffected',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 8 }), async (generated) => {
          const prefix = `r${run++}/`;
          const frames = generated.map((f) => prefixKeys(f, prefix));
          const items = frames.flatMap(itemsOf);
          const ws = await connect(server.ws('/ingest'));
          try {
            const answers = nextMessages(ws, items.length);
            for (const f of frames)
              ws.send(f.kind === 'binary' ? f.bytes : f.text, { binary: f.kind === 'binary' });
            const got = await answers;
            // Exactly one answer per event: nothing more arrives.
            const extra = nextMessages(ws, 1).then(
              () => true,
              () => false,
            );
            const [bystanderAnswer] = await exchange(bystander, [
              { key: 'bystander', ts: run, features: [1, 2, 3] },
            ]);
            expect(bystanderAnswer).toMatchObject({ key: 'bystander', seq: ++bystanderSeq });

            const predicted = new Map<string, number[]>();
            got.forEach((answer, i) => {
              const sent = items[i] as { key?: unknown } | undefined;
              if (typeof answer['seq'] === 'number') {
                // A prediction answers the event in its place: same key.
                expect(answer['key']).toBe(sent?.key);
                const seqs = predicted.get(answer['key'] as string) ?? [];
                seqs.push(answer['seq'] as number);
                predicted.set(answer['key'] as string, seqs);
              } else if (answer['duplicate'] !== undefined) {
                expect((answer['duplicate'] as { key: unknown }).key).toBe(sent?.key);
              } else {
                expect(answer['error']).toMatchObject({
                  code: expect.any(String),
                  reason: expect.any(String),
                });
                expect(JSON.stringify(answer).length).toBeLessThan(2048);
              }
            });
            // State moved exactly by the predictions: one step each, for their keys only.
            const keys = [
              ...new Set(
                items
                  .map((i) => (i as { key?: unknown } | null)?.key)
                  .filter((k): k is string => typeof k === 'string' && k.startsWith(prefix)),
              ),
            ];
            const records = await server.store.getMany(keys);
            keys.forEach((k, i) => {
              const seqs = predicted.get(k);
              if (!seqs) expect(records[i]).toBeUndefined();
              else expect(records[i]?.seq).toBe(seqs.at(-1));
            });
            ws.close();
            expect(await extra).toBe(false);
          } finally {
            ws.terminate();
          }
        }),
        fuzzParams(200),
      );
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    },
    TIMEOUT_MS,
  );
});
