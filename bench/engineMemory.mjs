// Memory per key and throughput of the whole engine at the sizes of issue 4: KeyedStepper over a
// CachedStore (maxKeysInMemory = all keys) over LMDB, H=64, one LSTM layer, a 1-output head.
// Every key gets one event, in batches; the slab then holds every key. Runs on the built JS:
//   npm run build && node --expose-gc bench/engineMemory.mjs [--keys 1000000] [--batch 4096] [--cap N]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KeyedStepper } from '../dist/engine/keyedStepper.js';
import { CachedStore } from '../dist/state/cachedStore.js';
import { LmdbStore } from '../dist/state/lmdbStore.js';
import { benchModel, withHead } from './model.mjs';

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string', default: '1000000' },
    batch: { type: 'string', default: '4096' },
    cap: { type: 'string' },
    dir: { type: 'string' },
  },
});
const KEYS = Number(args.keys);
const BATCH = Number(args.batch);
const CAP = args.cap === undefined ? KEYS : Number(args.cap);
const H = 64;
const INPUT = 8;

if (typeof globalThis.gc !== 'function') {
  console.error('run with node --expose-gc');
  process.exit(2);
}

const model = { ...withHead(benchModel(INPUT, H), 1), name: 'bench', version: '1' };

function settle() {
  for (let i = 0; i < 4; i++) globalThis.gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers, rss: m.rss };
}

const dir = args.dir ?? (await mkdtemp(join(tmpdir(), 'cellstream-engine-bench-')));
const lmdb = await LmdbStore.open({ path: join(dir, 'state') });
const store = new CachedStore({ backing: lmdb, maxKeys: CAP, stateSize: 2 * H, outputSize: 1 });
const stepper = new KeyedStepper({ model, store });

// A warm-up batch, so that code and lmdb's first pages are not counted per key.
await stepper.process([
  { event: { key: 'warm-up', ts: 0, features: new Array(INPUT).fill(0) }, position: { kind: 'none' } },
]);
const before = settle();
const t0 = performance.now();
for (let start = 0; start < KEYS; start += BATCH) {
  const batch = [];
  for (let i = start; i < Math.min(KEYS, start + BATCH); i++) {
    const features = Array.from({ length: INPUT }, (_, j) => Math.sin(i * 0.37 + j));
    batch.push({
      event: { key: JSON.parse(`"customer-${i}"`), ts: 1_732_700_000_000 + i, features },
      position: { kind: 'offset', topic: 'events', partition: i % 12, offset: String(i) },
    });
  }
  await stepper.process(batch);
}
const seconds = (performance.now() - t0) / 1000;
const after = settle();
const n = KEYS;
const perKey = {
  heap: (after.heap - before.heap) / n,
  buffers: (after.buffers - before.buffers) / n,
  rss: (after.rss - before.rss) / n,
};
const held = store.cachedKeys;
const size = await store.size();
await stepper.close();
await store.close();
if (!args.dir) await rm(dir, { recursive: true, force: true });

console.log(
  `KeyedStepper over CachedStore(maxKeys ${CAP.toLocaleString('en-US')}) over LMDB, ${KEYS.toLocaleString('en-US')} keys, ` +
    `H=${H} LSTM (${2 * H} floats of state), batches of ${BATCH}:`,
);
console.log(
  `  ${(perKey.heap + perKey.buffers).toFixed(1)} B/key in the JS heap and typed arrays ` +
    `(typed arrays ${perKey.buffers.toFixed(1)} + heap ${perKey.heap.toFixed(1)}); rss ${perKey.rss.toFixed(1)} B/key ` +
    `(includes LMDB's memory-mapped pages); ${held.toLocaleString('en-US')} keys held, ${size.toLocaleString('en-US')} stored`,
);
console.log(
  `  ${Math.round(KEYS / seconds).toLocaleString('en-US')} events/s end to end (step + durable LMDB write per batch)`,
);
console.log(
  JSON.stringify({
    keys: KEYS,
    cap: CAP,
    batch: BATCH,
    engineBytesPerKey: Math.round(perKey.heap + perKey.buffers),
    rssBytesPerKey: Math.round(perKey.rss),
    eventsPerS: Math.round(KEYS / seconds),
  }),
);
