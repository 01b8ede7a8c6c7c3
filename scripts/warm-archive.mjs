#!/usr/bin/env node
import { once } from 'node:events';
// Writes a synthetic archive of customer visits in the demo's event shape (named values `spend`
// and `channel`, ISO `ts`), for measuring `cellstream warm` on more than the demo's 285 events:
//
//   node scripts/warm-archive.mjs --events 200000 --keys 10000 --output /tmp/visits-archive.ndjson
//
// Each key visits at its own typical interval with noise; the lines are in time order, as an
// input topic's history would be. Seeded, so the same flags write the same file.
import { createWriteStream } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    keys: { type: 'string', default: '10000' },
    output: { type: 'string' },
    seed: { type: 'string', default: '1' },
  },
});
if (!values.output) {
  console.error('usage: node scripts/warm-archive.mjs --events N --keys K --output FILE [--seed S]');
  process.exit(1);
}
const events = Number(values.events);
const keys = Number(values.keys);
let s = Number(values.seed) >>> 0 || 1;
// xorshift32: fast, seeded, good enough for synthetic data.
const random = () => {
  s ^= s << 13;
  s ^= s >>> 17;
  s ^= s << 5;
  return (s >>> 0) / 2 ** 32;
};
const DAY = 86_400_000;
const T0 = Date.UTC(2022, 0, 1);
const channels = ['store', 'app', 'web'];
// Per key: its typical interval (days) and the time of its next visit.
const typical = Float64Array.from({ length: keys }, () => 6 + random() * 70);
const next = Float64Array.from({ length: keys }, (_, k) => T0 + random() * typical[k] * DAY);
// The next visit of every key, in time order: a binary heap of key indices by `next`.
const heap = Array.from({ length: keys }, (_, k) => k).sort((a, b) => next[a] - next[b]);
const down = (i) => {
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < heap.length && next[heap[l]] < next[heap[m]]) m = l;
    if (r < heap.length && next[heap[r]] < next[heap[m]]) m = r;
    if (m === i) return;
    [heap[i], heap[m]] = [heap[m], heap[i]];
    i = m;
  }
};

const out = createWriteStream(values.output);
for (let n = 0; n < events; n++) {
  const k = heap[0];
  const ts = next[k] - (next[k] % 60_000);
  const spend = Math.round((20 + random() * 90) * 100) / 100;
  const line = JSON.stringify({
    key: `customer-${k}`,
    ts: new Date(ts).toISOString().replace('.000Z', 'Z'),
    values: { spend, channel: channels[Math.floor(random() * 3)] },
  });
  if (!out.write(`${line}\n`)) await once(out, 'drain');
  next[k] += typical[k] * (0.7 + random() * 0.6) * DAY;
  down(0);
}
out.end();
await once(out, 'finish');
console.error(`wrote ${events} events of ${keys} keys to ${values.output}`);
