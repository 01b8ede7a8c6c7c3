import { stateSize } from '../dist/model/index.js';
import { referenceKernel } from '../dist/model/kernels/index.js';

/** Max abs difference from the reference over the first 5 steps of `inputs`, from the zero state. */
export async function outputsAgree(runner, model, batch, inputs) {
  runner.reset();
  const states = new Float32Array(batch * stateSize(model));
  let worst = 0;
  for (const x of inputs.slice(0, 5)) {
    const want = referenceKernel.stepBatch(model, states, [x], batch);
    const got = await runner.step(x);
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(want[i] - got[i]));
  }
  return worst;
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

const SEGMENTS = 20;

/**
 * Every implementation's warm-up, the same in quick, default and full runs (JIT tiers, wasm
 * tier-up, TF.js kernel caches, ORT's first-run allocations): at least this long and at least
 * WARM_CALLS calls. A warm-up that scaled with the budget let a quick run time TF.js cold.
 */
export const WARM_MS = 500;
export const WARM_CALLS = 10;

/**
 * Times one call per step (a batch of `batch` keys) until `budgetMs` has passed, after the fixed
 * warm-up above. Latencies are per call, in wall
 * time; steps/s counts key-steps over the summed call times.
 *
 * The process's CPU time is read as well, per segment of the run (a twentieth of the budget):
 * on a loaded machine wall time includes the time other processes held the core, CPU time does
 * not. `cpuUsPerCall` is the median over segments (a segment's CPU time over its calls; a
 * per-call reading would cost more than the fastest calls). CPU time counts every thread of the
 * process, so a runtime that worked on other threads would show it here.
 */
export async function measure(runner, inputs, batch, budgetMs) {
  const run = async (ms, minCalls, record, segments) => {
    const start = performance.now();
    let i = 0;
    let seg = { t0: performance.now(), cpu0: process.cpuUsage(), calls: 0 };
    while (performance.now() - start < ms || i < minCalls) {
      const t0 = performance.now();
      const y = runner.step(inputs[i++ % inputs.length]);
      if (y && typeof y.then === 'function') await y;
      const t1 = performance.now();
      record?.push(t1 - t0);
      seg.calls++;
      if (segments && t1 - seg.t0 >= ms / SEGMENTS) {
        const c = process.cpuUsage(seg.cpu0);
        segments.push((c.user + c.system) / seg.calls);
        seg = { t0: performance.now(), cpu0: process.cpuUsage(), calls: 0 };
      }
    }
  };
  await run(WARM_MS, WARM_CALLS);
  const lat = [];
  const cpu = [];
  await run(budgetMs, 5, lat, cpu);
  const total = lat.reduce((a, b) => a + b, 0);
  lat.sort((a, b) => a - b);
  cpu.sort((a, b) => a - b);
  const cpuUsPerCall = cpu.length > 0 ? percentile(cpu, 0.5) : null;
  return {
    stepsPerSec: (lat.length * batch) / (total / 1000),
    p50us: percentile(lat, 0.5) * 1000,
    p99us: percentile(lat, 0.99) * 1000,
    cpuUsPerCall,
    cpuStepsPerSec: cpuUsPerCall ? (batch * 1e6) / cpuUsPerCall : null,
    calls: lat.length,
  };
}
