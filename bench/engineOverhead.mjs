// The engine's overhead alone, quicker than the whole bench: the rows `npm run bench` divides for
// `engineOverhead` (B=1) and `engineOverheadB256` — the engine (KeyedStepper over the in-memory
// store, bench/impls/engine.mjs) against the default kernel's session (bench/impls/cellstream.mjs)
// at I=16, H=64 — measured alternately `--rounds` times, with medians of wall and CPU time.
// Profile it with node --cpu-prof.
//   npm run build && node bench/engineOverhead.mjs [--rounds 3] [--ms 1000] [--only engine] [--batch 1]
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { cellstreamImpl } from './impls/cellstream.mjs';
import { engineImpl } from './impls/engine.mjs';
import { measure } from './measure.mjs';
import { benchModel, inputStream } from './model.mjs';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    ms: { type: 'string', default: '1000' },
    only: { type: 'string' },
    batch: { type: 'string' },
  },
});
const model = benchModel(16, 64);
const impls = [cellstreamImpl('native'), engineImpl()].filter(
  (i) => !args.only || i.impl.includes(args.only),
);
console.log(
  `load average before: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
const rows = new Map();
for (let round = 0; round < Number(args.rounds); round++) {
  for (const batch of args.batch ? [Number(args.batch)] : [1, 256]) {
    for (const impl of impls) {
      const inputs = inputStream(16, batch);
      const runner = await impl.create(model, batch, inputs);
      const t = await measure(runner, inputs, batch, Number(args.ms));
      runner.dispose();
      const key = `${impl.impl} B=${batch}`;
      if (!rows.has(key)) rows.set(key, []);
      rows.get(key).push({ wall: t.p50us / batch, cpu: t.cpuUsPerCall / batch });
    }
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const per = {};
for (const [key, runs] of rows) {
  per[key] = { wall: median(runs.map((r) => r.wall)), cpu: median(runs.map((r) => r.cpu)) };
  console.log(
    `${key.padEnd(28)} µs per key-step: median wall ${per[key].wall.toFixed(3)}, CPU ${per[key].cpu.toFixed(3)}`,
  );
}
for (const b of [1, 256]) {
  const e = per[`cellstream-engine B=${b}`];
  const k = per[`cellstream-native B=${b}`];
  if (e && k) {
    console.log(
      `engine / bare step, B=${b}: ${(e.wall / k.wall).toFixed(2)} (wall), ${(e.cpu / k.cpu).toFixed(2)} (CPU)`,
    );
  }
}
console.log(
  `load average after: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
