// Property test over the engine on a real LMDB store: random interleavings of good and bad events
// across keys, in random batches. Every event gets exactly one outcome, bad ones rejected with
// their own code; state changes only for keys with accepted events; and the good events' outcomes
// equal those of a run without the bad events at all.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import type { Envelope, Outcome } from '../../src/engine/types.js';
import { createState, modelFingerprint } from '../../src/model/index.js';
import { referenceKernel } from '../../src/model/kernels/index.js';
import { LmdbStore } from '../../src/state/lmdbStore.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import type { StateStore } from '../../src/state/types.js';
import { fuzzParams, fuzzTimeout } from '../helpers/fuzz.js';
import { tinyLstm } from '../helpers/models.js';

const NOW = Date.parse('2026-12-06T09:00:00Z');
const DAY = 86_400_000;
const model = tinyLstm();

type Op =
  | { kind: 'good'; key: number; f: number[]; id?: number; raw: boolean; reset: boolean }
  | { kind: 'future'; key: number }
  | { kind: 'wrongSize'; key: number }
  | { kind: 'longKey' }
  | { kind: 'longId'; key: number }
  | { kind: 'malformed' }
  | { kind: 'foreign' };

const CODES: Record<Exclude<Op['kind'], 'good'>, string> = {
  future: 'EVENT_TS_IN_FUTURE',
  wrongSize: 'EVENT_WRONG_SIZE',
  longKey: 'EVENT_KEY_TOO_LONG',
  longId: 'EVENT_ID_TOO_LONG',
  malformed: 'EVENT_MALFORMED_JSON',
  foreign: 'STATE_MODEL_MISMATCH',
};

const key = fc.integer({ min: 0, max: 4 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record(
      {
        kind: fc.constant('good' as const),
        key,
        f: fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: 3, maxLength: 3 }),
        id: fc.integer({ min: 0, max: 5 }),
        raw: fc.boolean(),
        reset: fc.boolean(),
      },
      { requiredKeys: ['kind', 'key', 'f', 'raw', 'reset'] },
    ),
  },
  fc.record({ kind: fc.constant('future' as const), key }),
  fc.record({ kind: fc.constant('wrongSize' as const), key }),
  fc.record({ kind: fc.constant('longKey' as const) }),
  fc.record({ kind: fc.constant('longId' as const), key }),
  fc.record({ kind: fc.constant('malformed' as const) }),
  fc.record({ kind: fc.constant('foreign' as const) }),
);

/** The envelope of op `i` for keys prefixed `prefix`, at line i + 1. */
function envelope(o: Op, i: number, prefix: string): Envelope {
  const position = { kind: 'line', file: 'fuzz', line: i + 1 } as const;
  const ts = NOW - DAY + i * 1000;
  const k = (n: number) => `${prefix}k${n}`;
  switch (o.kind) {
    case 'good': {
      const event = {
        key: k(o.key),
        ts,
        features: o.f,
        ...(o.id === undefined ? {} : { id: `${k(o.key)}-id-${o.id}` }),
        ...(o.reset ? { reset: true } : {}),
      };
      return o.raw ? { raw: JSON.stringify(event), position } : { event, position };
    }
    case 'future':
      return { event: { key: k(o.key), ts: NOW + 2 * DAY, features: [1, 2, 3] }, position };
    case 'wrongSize':
      return { raw: JSON.stringify({ key: k(o.key), ts, features: [1, 2] }), position };
    case 'longKey':
      return { event: { key: `${prefix}${'L'.repeat(600)}`, ts, features: [1, 2, 3] }, position };
    case 'longId':
      return { event: { key: k(o.key), ts, features: [1, 2, 3], id: 'i'.repeat(200) }, position };
    case 'malformed':
      return { raw: `{"key":"${k(0)}","ts":`, position };
    case 'foreign':
      return { event: { key: `${prefix}foreign`, ts, features: [1, 2, 3] }, position };
  }
}

function stepper(store: StateStore): KeyedStepper {
  return new KeyedStepper({
    model,
    store,
    kernel: referenceKernel,
    now: () => NOW,
    limits: { maxTsAheadMs: DAY },
  });
}

/** Runs `envelopes` in batches of the given sizes, one after another; the outcomes in order. */
async function run(
  s: KeyedStepper,
  envelopes: readonly Envelope[],
  sizes: readonly number[],
): Promise<Outcome[]> {
  const out: Outcome[] = [];
  let at = 0;
  for (let b = 0; at < envelopes.length; b++) {
    const n = sizes[b % sizes.length];
    out.push(...(await s.process(envelopes.slice(at, at + n))));
    at += n;
  }
  return out;
}

/** An outcome with the run's key prefix taken out, to compare runs on different keys. */
function unprefixed(o: Outcome, prefix: string): unknown {
  const strip = (k: string) => (k.startsWith(prefix) ? k.slice(prefix.length) : k);
  if (o.kind === 'prediction') return { ...o, prediction: { ...o.prediction, key: strip(o.prediction.key) } };
  if (o.kind === 'duplicate') return { ...o, key: strip(o.key) };
  return o;
}

describe('fuzz: the engine isolates bad events', () => {
  let dir: string;
  let store: LmdbStore;
  let runs = 0;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cellstream-fuzz-engine-'));
    store = await LmdbStore.open({ path: join(dir, 'state') });
  });
  afterAll(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it(
    'one outcome per event, state only for accepted ones, good keys as if the bad events never came',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(op, { minLength: 1, maxLength: 60 }),
          fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 5 }),
          async (ops, sizes) => {
            // Each run has keys of its own in the one LMDB store.
            const prefix = `r${runs++}-`;
            const foreign = {
              seq: 7,
              ts: 0,
              state: createState(model),
              lastApplied: { kind: 'none' },
              fingerprint: modelFingerprint(tinyLstm(99)),
            } as const;
            await store.putMany([[`${prefix}foreign`, foreign]]);
            const envelopes = ops.map((o, i) => envelope(o, i, prefix));
            const outcomes = await run(stepper(store), envelopes, sizes);

            // Exactly one outcome per event, in order; nothing else (no TTL, no resets here).
            expect(outcomes.map((o) => 'position' in o && o.position)).toEqual(
              envelopes.map((e) => e.position),
            );
            ops.forEach((o, i) => {
              const got = outcomes[i];
              if (o.kind === 'good') expect(['prediction', 'duplicate']).toContain(got.kind);
              else expect(got.kind === 'rejected' && got.code).toBe(CODES[o.kind]);
            });

            // The good events alone, on a store of their own, give the same outcomes.
            const goodIdx = ops.flatMap((o, i) => (o.kind === 'good' ? [i] : []));
            const alonePrefix = `alone-${prefix}`;
            const alone = await run(
              stepper(new MemoryStateStore()),
              goodIdx.map((i) => envelope(ops[i], i, alonePrefix)),
              sizes,
            );
            expect(alone.map((o) => unprefixed(o, alonePrefix))).toEqual(
              goodIdx.map((i) => unprefixed(outcomes[i], prefix)),
            );

            // State only where events were accepted: the foreign key untouched, the long key and
            // keys with only bad events absent, each good key at the seq of its last prediction.
            const keys = [0, 1, 2, 3, 4].map((n) => `${prefix}k${n}`);
            const records = await store.getMany([...keys, `${prefix}foreign`, `${prefix}${'L'.repeat(600)}`]);
            expect(records[5]).toEqual({ ...foreign, state: foreign.state });
            expect(records[6]).toBeUndefined();
            keys.forEach((k, n) => {
              const last = [...outcomes]
                .reverse()
                .find((o) => o.kind === 'prediction' && o.prediction.key === k && !o.redelivered);
              const seq = last?.kind === 'prediction' ? last.prediction.seq : undefined;
              expect(records[n]?.seq, k).toBe(seq);
            });
          },
        ),
        fuzzParams(150),
      );
    },
    // Each run steps a few batches on LMDB: about 10 ms on an idle machine.
    fuzzTimeout(150, 40),
  );
});
