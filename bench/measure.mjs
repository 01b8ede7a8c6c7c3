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

/**
 * Times one call per step (a batch of `batch` keys) until `budgetMs` has passed, after a warm-up
 * of a fifth of it (JIT tiers, wasm tier-up, TF.js kernel caches). Latencies are per call;
 * steps/s counts key-steps over the summed call times.
 */
export async function measure(runner, inputs, batch, budgetMs) {
  const run = async (ms, record) => {
    const start = performance.now();
    let i = 0;
    while (performance.now() - start < ms || i < 5) {
      const t0 = performance.now();
      const y = runner.step(inputs[i++ % inputs.length]);
      if (y && typeof y.then === 'function') await y;
      record?.push(performance.now() - t0);
    }
  };
  await run(budgetMs / 5);
  const lat = [];
  await run(budgetMs, lat);
  const total = lat.reduce((a, b) => a + b, 0);
  lat.sort((a, b) => a - b);
  return {
    stepsPerSec: (lat.length * batch) / (total / 1000),
    p50us: percentile(lat, 0.5) * 1000,
    p99us: percentile(lat, 0.99) * 1000,
    calls: lat.length,
  };
}
