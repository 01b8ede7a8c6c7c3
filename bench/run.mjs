#!/usr/bin/env node
// npm run bench [-- --quick] [-- --json FILE]
//
// cellstream's kernels against TF.js (cpu, wasm) and onnxruntime-node, in one process, on the
// same weights and inputs; each implementation's outputs are checked against the reference
// before it is timed. Runs on the built JS (npm run build). Never asserts a time.
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { cellstreamImpl } from './impls/cellstream.mjs';
import { engineImpl } from './impls/engine.mjs';
import { ortImpl } from './impls/ort.mjs';
import { tfjsImpl } from './impls/tfjs.mjs';
import { measure, outputsAgree } from './measure.mjs';
import { benchModel, inputStream } from './model.mjs';
import { formatTable } from './table.mjs';

const { values: args } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, json: { type: 'string' } },
});

const I = 16;
const RATIO_H = 64;
const quick = args.quick;
const sizes = quick ? [RATIO_H] : [32, 64, 256];
const budgetMs = quick ? 250 : 2000;
/** Agreement with the reference after 5 steps from the zero state, float32 paths against float64 sums. */
const AGREE = 1e-4;

const peers = [
  [cellstreamImpl('js'), [1]],
  [cellstreamImpl('wasm'), [1, 16, 256]],
  [ortImpl(), quick ? [1, 256] : [1, 16, 256]],
  [tfjsImpl('wasm'), quick ? [1, 256] : [1, 16, 256]],
  [tfjsImpl('cpu'), quick ? [1, 256] : [1, 16, 256]],
];

const results = [];
for (const H of sizes) {
  const model = benchModel(I, H);
  for (const [impl, batches] of peers) {
    for (const batch of batches) {
      const inputs = inputStream(I, batch);
      const runner = await impl.create(model, batch, inputs);
      const maxAbsDiff = await outputsAgree(runner, model, batch, inputs);
      runner.reset();
      const timing = await measure(runner, inputs, batch, budgetMs);
      runner.dispose();
      const row = { impl: impl.impl, H, batch, ...timing, maxAbsDiff, agree: maxAbsDiff <= AGREE };
      results.push(row);
      console.error(`  ${row.impl} H=${H} B=${batch}: ${Math.round(row.stepsPerSec)} steps/s`);
    }
  }
  // The engine's rows: state look-up, step, prediction object, state write-back.
  for (const batch of quick ? [1] : [1, 256]) {
    const inputs = inputStream(I, batch);
    const runner = await engineImpl().create(model, batch, inputs);
    const timing = await measure(runner, inputs, batch, budgetMs);
    results.push({ impl: 'cellstream-engine', H, batch, ...timing, maxAbsDiff: null, agree: true });
  }
}

const rate = (impl, batch) =>
  results.find((r) => r.impl === impl && r.H === RATIO_H && r.batch === batch)?.stepsPerSec;
const ratio = (a, b) => (a && b ? a / b : null);
const ratios = {
  perEventVsOrt: ratio(rate('cellstream-wasm', 1), rate('onnxruntime-node', 1)),
  perEventVsTfjsWasm: ratio(rate('cellstream-wasm', 1), rate('tfjs-wasm', 1)),
  batchedVsOrt: ratio(rate('cellstream-wasm', 256), rate('onnxruntime-node', 256)),
  // engine time per event / bare step time per event
  engineOverhead: ratio(rate('cellstream-wasm', 1), rate('cellstream-engine', 1)),
  // Kafka end to end needs a broker and the Kafka source/sink: not measured yet.
  endToEndVsPassthrough: null,
};
// The same ratios from median call times: on a shared machine the means above carry other
// processes' preemptions, the medians mostly do not.
const median = (impl, batch) => {
  const r = results.find((x) => x.impl === impl && x.H === RATIO_H && x.batch === batch);
  return r ? r.batch / r.p50us : undefined;
};
const ratiosP50 = {
  perEventVsOrt: ratio(median('cellstream-wasm', 1), median('onnxruntime-node', 1)),
  perEventVsTfjsWasm: ratio(median('cellstream-wasm', 1), median('tfjs-wasm', 1)),
  batchedVsOrt: ratio(median('cellstream-wasm', 256), median('onnxruntime-node', 256)),
  engineOverhead: ratio(median('cellstream-wasm', 1), median('cellstream-engine', 1)),
  endToEndVsPassthrough: null,
};
const cpu = cpus();
const machine = `${cpu[0]?.model ?? 'unknown cpu'}, ${cpu.length} cores, node ${process.version}, load average ${loadavg()
  .map((l) => l.toFixed(2))
  .join(' ')}`;
const report = { machine, quick, results, ratios, ratiosP50, agreed: results.every((r) => r.agree) };

console.log(`\n${machine}\n`);
console.log(formatTable(results));
const round = (_, v) => (typeof v === 'number' ? Number(v.toFixed(2)) : v);
console.log(`\nratios at H=${RATIO_H}, from mean times: ${JSON.stringify(ratios, round)}`);
console.log(`ratios at H=${RATIO_H}, from median times: ${JSON.stringify(ratiosP50, round)}`);
if (args.json) writeFileSync(args.json, `${JSON.stringify(report, null, 2)}\n`);
if (!report.agreed) {
  console.error('some implementation disagreed with the reference: see maxAbsDiff');
  process.exitCode = 1;
}
// TF.js and ORT keep handles that would hold the process open.
setImmediate(() => process.exit());
