// Memory per key held in a StateSlab, and LMDB write/read throughput, at the sizes of issue 4:
// H=64, one LSTM layer (128 floats of state per key). Runs on the built JS:
//   npm run build && node --expose-gc bench/stateMemory.mjs [--keys 1000000] [--records 200000] [--batch 1000] [--naive]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LmdbStore } from '../dist/state/lmdbStore.js';
import { StateSlab } from '../dist/state/stateSlab.js';

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string', default: '1000000' },
    records: { type: 'string', default: '200000' },
    batch: { type: 'string', default: '1000' },
    naive: { type: 'boolean', default: false },
    dir: { type: 'string' },
  },
});
const KEYS = Number(args.keys);
const RECORDS = Number(args.records);
const BATCH = Number(args.batch);
const STATE_SIZE = 128;
const FINGERPRINT = 'a3f1c2e4b5d6978812345678909abcdefa3f1c2e4b5d6978812345678909abcd';

if (typeof globalThis.gc !== 'function') {
  console.error('run with node --expose-gc');
  process.exit(2);
}

function settle() {
  for (let i = 0; i < 4; i++) globalThis.gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers, rss: m.rss };
}

// Keys as a decoder produces them (flat strings), not as cons-strings of a concatenation.
function entityKey(i) {
  return JSON.parse(`"customer-${i}"`);
}

function record(i, state) {
  for (let j = 0; j < STATE_SIZE; j++) state[j] = Math.sin(i + j);
  return {
    seq: (i % 1000) + 1,
    ts: 1_732_700_000_000 + i,
    state,
    lastApplied: { kind: 'offset', topic: 'events', partition: i % 12, offset: String(i * 7) },
    fingerprint: FINGERPRINT,
  };
}

function perKey(before, after, n) {
  const heap = (after.heap - before.heap) / n;
  const buffers = (after.buffers - before.buffers) / n;
  return { heap, buffers, total: heap + buffers, rss: (after.rss - before.rss) / n };
}

function measureSlab() {
  const scratch = new Float32Array(STATE_SIZE);
  const before = settle();
  const slab = new StateSlab({ stateSize: STATE_SIZE, maxKeys: KEYS });
  let setMs = 0;
  for (let i = 0; i < KEYS; i++) {
    const key = entityKey(i);
    const r = record(i, scratch);
    const t0 = performance.now();
    slab.set(key, r);
    setMs += performance.now() - t0;
  }
  const after = settle();
  if (slab.size !== KEYS) throw new Error('slab lost keys');
  return { ...perKey(before, after, KEYS), setNs: (setMs * 1e6) / KEYS, slab };
}

function measureNaive() {
  const before = settle();
  const map = new Map();
  for (let i = 0; i < KEYS; i++) map.set(entityKey(i), record(i, new Float32Array(STATE_SIZE)));
  const after = settle();
  return { ...perKey(before, after, KEYS), map };
}

async function measureLmdb(overlappingSync) {
  const dir = args.dir ?? (await mkdtemp(join(tmpdir(), 'cellstream-bench-')));
  const path = join(dir, overlappingSync ? 'overlapping' : 'inline');
  const store = await LmdbStore.open({ path, overlappingSync });
  const batches = [];
  for (let b = 0; b < RECORDS / BATCH; b++) {
    batches.push(
      Array.from({ length: BATCH }, (_, j) => {
        const i = b * BATCH + j;
        return [entityKey(i), record(i, new Float32Array(STATE_SIZE))];
      }),
    );
  }
  let t0 = performance.now();
  for (const batch of batches) await store.putMany(batch);
  const writeS = (performance.now() - t0) / 1000;
  // Overwrites of existing keys, as a steady-state engine does.
  t0 = performance.now();
  for (const batch of batches) await store.putMany(batch);
  const overwriteS = (performance.now() - t0) / 1000;
  t0 = performance.now();
  let found = 0;
  for (const batch of batches) {
    for (const r of await store.getMany(batch.map(([k]) => k))) if (r) found++;
  }
  const readS = (performance.now() - t0) / 1000;
  if (found !== RECORDS || (await store.size()) !== RECORDS) throw new Error('lmdb lost records');
  await store.close();
  if (!args.dir) await rm(dir, { recursive: true, force: true });
  return { writePerS: RECORDS / writeS, overwritePerS: RECORDS / overwriteS, readPerS: RECORDS / readS };
}

const fmt = (n) => Math.round(n).toLocaleString('en-US');

const slab = measureSlab();
console.log(`StateSlab, ${fmt(KEYS)} keys, ${STATE_SIZE} floats (${STATE_SIZE * 4} B) of state each:`);
console.log(
  `  ${slab.total.toFixed(1)} B/key resident (typed arrays ${slab.buffers.toFixed(1)} + heap ${slab.heap.toFixed(1)}); ` +
    `rss ${slab.rss.toFixed(1)} B/key; set() ${fmt(slab.setNs)} ns/key`,
);
slab.slab = undefined;

let naive;
if (args.naive) {
  settle();
  naive = measureNaive();
  console.log(
    `Map<string, StateRecord> for comparison: ${naive.total.toFixed(1)} B/key ` +
      `(typed arrays ${naive.buffers.toFixed(1)} + heap ${naive.heap.toFixed(1)})`,
  );
  naive.map = undefined;
}

const lmdb = {};
for (const overlappingSync of [false, true]) {
  const r = await measureLmdb(overlappingSync);
  lmdb[overlappingSync ? 'overlappingSync' : 'inlineSync'] = r;
  console.log(
    `LmdbStore (overlappingSync=${overlappingSync}), ${fmt(RECORDS)} records in batches of ${BATCH}, ` +
      `each awaited until durable: write ${fmt(r.writePerS)} states/s, overwrite ${fmt(r.overwritePerS)} states/s, ` +
      `getMany ${fmt(r.readPerS)} states/s`,
  );
}

console.log(
  JSON.stringify({
    keys: KEYS,
    stateFloats: STATE_SIZE,
    slabBytesPerKey: Math.round(slab.total),
    naiveBytesPerKey: naive && Math.round(naive.total),
    lmdb,
  }),
);
