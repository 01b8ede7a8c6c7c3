import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadKerasModel } from '../../src/formats/keras/index.js';
import { parseOnnxModel } from '../../src/formats/onnx/index.js';
import { loadTfjsModel } from '../../src/formats/tfjs/index.js';
import { createState, type Model, stateSize } from '../../src/model/index.js';
import {
  createNativeKernel,
  type Kernel,
  loadNative,
  nativeSupports,
} from '../../src/model/kernels/index.js';
import { type Fixture, listFixtures, maxAbsError } from './harness.js';

// The framework fixtures (frameworks.test.ts runs them through the float64 core) through the
// native kernel itself, not a kernel selection that could fall back to wasm unnoticed: every
// fixture whose model it runs, one event at a time and with each round of keys in one batch.

const importers: Record<string, (f: Fixture) => Promise<Model>> = {
  onnx: async (f) => parseOnnxModel(readFileSync(f.modelPath), f.meta.name),
  keras: (f) => loadKerasModel(f.modelPath),
  tfjs: (f) => loadTfjsModel(f.modelPath),
};

const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
const cpuRunsIt = process.arch === 'x64' && /\bavx2\b/.test(cpuinfo) && /\bfma\b/.test(cpuinfo);

// Built here from native/kernel.c, not whatever an earlier `npm run build` left in build/native.
const dir = mkdtempSync(join(tmpdir(), 'cellstream-golden-native-'));
let native: Kernel;
beforeAll(() => {
  if (!cpuRunsIt) return;
  execFileSync('node', ['scripts/build-native.mjs', '--strict', '--out', dir], { stdio: 'pipe' });
  const addon = loadNative(join(dir, 'cellstream-native.node'));
  if (addon instanceof Error) throw addon;
  native = createNativeKernel(addon);
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Event {
  key: string;
  features?: number[];
  inputs?: Record<string, number[]>;
  reset?: boolean;
}

function inputsOf(model: Model, e: Event): number[][] {
  return e.inputs ? model.inputs.map((i) => e.inputs![i.name]) : [e.features!];
}

/** Each event stepped alone, in stream order, each key on its own state (a reset starts it from zero). */
function oneByOne(kernel: Kernel, model: Model, f: Fixture): number[][] {
  const states = new Map<string, Float32Array>();
  return (f.events as unknown as Event[]).map((e) => {
    const state = e.reset || !states.has(e.key) ? createState(model) : states.get(e.key)!;
    states.set(e.key, state);
    const x = inputsOf(model, e).map((v) => Float32Array.from(v));
    return Array.from(kernel.stepBatch(model, state, x, 1));
  });
}

/** Round t steps every key's t-th event together, in one batch. */
function inRounds(kernel: Kernel, model: Model, f: Fixture): number[][] {
  const events = f.events as unknown as Event[];
  const perKey = new Map<string, number[]>();
  events.forEach((e, i) => {
    perKey.set(e.key, [...(perKey.get(e.key) ?? []), i]);
  });
  const keys = [...perKey.keys()];
  const S = stateSize(model);
  const states = new Float32Array(keys.length * S);
  const outputs: number[][] = new Array(events.length);
  for (let t = 0; ; t++) {
    const round = keys.flatMap((k, slot) => {
      const i = perKey.get(k)![t];
      return i === undefined ? [] : [{ slot, i }];
    });
    if (round.length === 0) break;
    const batch = new Float32Array(round.length * S);
    round.forEach(({ slot, i }, b) => {
      if (!events[i].reset) batch.set(states.subarray(slot * S, (slot + 1) * S), b * S);
    });
    const x = model.inputs.map((inp, j) => {
      const a = new Float32Array(round.length * inp.size);
      round.forEach(({ i }, b) => {
        a.set(inputsOf(model, events[i])[j], b * inp.size);
      });
      return a;
    });
    const out = kernel.stepBatch(model, batch, x, round.length);
    const O = out.length / round.length;
    round.forEach(({ slot, i }, b) => {
      states.set(batch.subarray(b * S, (b + 1) * S), slot * S);
      outputs[i] = Array.from(out.subarray(b * O, (b + 1) * O));
    });
  }
  return outputs;
}

describe.runIf(cpuRunsIt)('golden fixtures on the native kernel', () => {
  const fixtures = listFixtures();

  it('runs the GRUs with the reset before the product (Keras reset_after=False, ONNX linear_before_reset=0) among them', async () => {
    const runs: string[] = [];
    for (const f of fixtures) if (nativeSupports(await importers[f.meta.format](f))) runs.push(f.meta.name);
    expect(runs).toEqual(
      expect.arrayContaining(['keras-gru-reset-before', 'keras-h5v2-gru-reset-before', 'onnx-gru-lbr0']),
    );
    // And the rest it ran before: the reset after, LSTMs, stacked and two-branch models.
    expect(runs).toEqual(
      expect.arrayContaining([
        'keras-gru-reset-after',
        'onnx-gru-lbr1',
        'keras-lstm-stacked',
        'keras-two-branch',
      ]),
    );
  });

  it.each(fixtures.map((f) => [f.meta.name, f] as const))(
    '%s: one event at a time and a round of keys per batch equal the framework',
    async (_, f) => {
      const model = await importers[f.meta.format](f);
      if (!nativeSupports(model)) {
        // Not the native kernel's: it refuses the model rather than run it some other way.
        expect(() =>
          native.stepBatch(
            model,
            createState(model),
            inputsOf(model, f.events[0] as unknown as Event).map((v) => Float32Array.from(v)),
            1,
          ),
        ).toThrow(/does not run/);
        return;
      }
      const expected = f.expected.map((e) => e.output);
      const alone = maxAbsError(oneByOne(native, model, f), expected);
      const rounds = maxAbsError(inRounds(native, model, f), expected);
      console.log(
        `native ${f.meta.name}: max abs error ${alone.toExponential(2)} alone, ${rounds.toExponential(2)} in rounds`,
      );
      expect(alone).toBeLessThanOrEqual(f.meta.tolerance);
      expect(rounds).toBeLessThanOrEqual(f.meta.tolerance);
    },
  );
});
