import { describe, expect, it } from 'vitest';
import { ModelInvalidError } from '../../src/errors.js';
import {
  createState,
  modelFingerprint,
  outputSize,
  runSequence,
  stateSize,
  step,
  stepBatch,
} from '../../src/model/index.js';
import type { LstmLayer, Model } from '../../src/model/types.js';
import { prng, randomArray, randomGru, randomLstm, smallModel } from '../helpers/models.js';

const sig = (x: number) => 1 / (1 + Math.exp(-x));

function oneUnitLstm(w: number, r: number, b: number, extra: Partial<LstmLayer> = {}): Model {
  // Every gate gets the same scalar weights, so the textbook equations can be written out by hand.
  return {
    name: 'one',
    source: 'test',
    inputs: [{ name: 'x', size: 1 }],
    branches: [
      {
        input: 'x',
        layers: [
          {
            kind: 'lstm',
            inputSize: 1,
            hiddenSize: 1,
            W: new Float32Array([w, w, w, w]),
            R: new Float32Array([r, r, r, r]),
            b: new Float32Array([b, b, b, b]),
            inputForget: false,
            activations: { f: { kind: 'sigmoid' }, g: { kind: 'tanh' }, h: { kind: 'tanh' } },
            ...extra,
          },
        ],
      },
    ],
    head: [],
  };
}

describe('LSTM step', () => {
  it('follows the textbook equations on a one-unit cell', () => {
    const m = oneUnitLstm(0.5, -0.25, 0.1);
    const xs = [1, -2, 0.5];
    let h = 0;
    let c = 0;
    const outs = runSequence(
      m,
      xs.map((x) => [new Float32Array([x])]),
    );
    xs.forEach((x, t) => {
      const a = Math.fround(0.5) * x + Math.fround(-0.25) * h + Math.fround(0.1);
      const i = sig(a);
      const f = sig(a);
      const g = Math.tanh(a);
      const o = sig(a);
      c = f * c + i * g;
      h = o * Math.tanh(c);
      expect(outs[t][0]).toBeCloseTo(h, 6);
    });
  });

  it('couples the forget gate to the input gate when inputForget is set', () => {
    const plain = oneUnitLstm(0.7, 0.3, -0.2);
    const coupled = oneUnitLstm(0.7, 0.3, -0.2, { inputForget: true });
    const xs = [[new Float32Array([1])], [new Float32Array([2])]];
    const a = runSequence(plain, xs);
    const b = runSequence(coupled, xs);
    // Step 1: C_{t-1} = 0, so the forget gate does not matter yet.
    expect(b[0][0]).toBeCloseTo(a[0][0], 7);
    // Step 2 by hand with f = 1 − i.
    const a1 = 0.7 * 1 + 0.3 * 0 - 0.2;
    const c1 = sig(a1) * Math.tanh(a1);
    const h1 = Math.fround(sig(a1) * Math.tanh(c1));
    const a2 = Math.fround(0.7) * 2 + Math.fround(0.3) * h1 + Math.fround(-0.2);
    const c2 = (1 - sig(a2)) * c1 + sig(a2) * Math.tanh(a2);
    expect(b[1][0]).toBeCloseTo(sig(a2) * Math.tanh(c2), 6);
  });

  it('bounds pre-activations by clip', () => {
    const m = oneUnitLstm(10, 0, 0, { clip: 0.5 });
    const [[h]] = runSequence(m, [[new Float32Array([3])]]);
    // Every gate's input is clipped from 30 to 0.5.
    const c = sig(0.5) * Math.tanh(0.5);
    expect(h).toBeCloseTo(sig(0.5) * Math.tanh(c), 6);
  });

  it('feeds C_{t−1} to the input and forget peepholes and C_t to the output peephole', () => {
    const pi = new Float32Array([0.3]);
    const pf = new Float32Array([-0.4]);
    const po = new Float32Array([0.9]);
    const m = oneUnitLstm(0.5, 0.2, 0, { peephole: { i: pi, f: pf, o: po } });
    const xs = [1, 1];
    const outs = runSequence(
      m,
      xs.map((x) => [new Float32Array([x])]),
    );
    let h = 0;
    let c = 0;
    xs.forEach((x, t) => {
      const a = Math.fround(0.5) * x + Math.fround(0.2) * h;
      const i = sig(a + pi[0] * c);
      const f = sig(a + pf[0] * c);
      const cNew = f * c + i * Math.tanh(a);
      const o = sig(a + po[0] * cNew);
      c = cNew;
      h = o * Math.tanh(c);
      expect(outs[t][0]).toBeCloseTo(h, 6);
    });
  });
});

describe('GRU step', () => {
  it('places the reset gate before or after the recurrent product as configured', () => {
    const H = 1;
    const base = {
      kind: 'gru' as const,
      inputSize: 1,
      hiddenSize: H,
      W: new Float32Array([0.5, -0.5, 1]),
      R: new Float32Array([0.25, 0.75, -1]),
      bW: new Float32Array([0.1, 0.2, 0.3]),
      bR: new Float32Array([0.05, -0.1, 0.4]),
      activations: { f: { kind: 'sigmoid' as const }, g: { kind: 'tanh' as const } },
    };
    const model = (lbr: boolean): Model => ({
      name: 'g',
      source: 'test',
      inputs: [{ name: 'x', size: 1 }],
      branches: [{ input: 'x', layers: [{ ...base, linearBeforeReset: lbr }] }],
      head: [],
    });
    const f = (v: number) => Math.fround(v);
    const xs = [1, -1, 2];
    for (const lbr of [true, false]) {
      const outs = runSequence(
        model(lbr),
        xs.map((x) => [new Float32Array([x])]),
      );
      let h = 0;
      xs.forEach((x, t) => {
        const z = sig(f(0.5) * x + f(0.1) + f(0.25) * h + f(0.05));
        const r = sig(f(-0.5) * x + f(0.2) + f(0.75) * h + f(-0.1));
        const cand = lbr
          ? Math.tanh(x + f(0.3) + r * (-1 * h + f(0.4)))
          : Math.tanh(x + f(0.3) + -1 * (r * h) + f(0.4));
        h = Math.fround((1 - z) * cand + z * h);
        expect(outs[t][0]).toBeCloseTo(h, 6);
      });
    }
  });
});

describe('network', () => {
  it('gives every key of a batch exactly what a single step gives it', () => {
    const m = smallModel(7);
    const B = 9;
    const S = stateSize(m);
    const rnd = prng(99);
    const states = randomArray(B * S, rnd, 0.8);
    const xs = randomArray(B * 3, rnd, 2);
    const before = states.slice();
    const out = stepBatch(m, states, [xs], B);
    for (let b = 0; b < B; b++) {
      const single = step(m, before.subarray(b * S, (b + 1) * S), [xs.subarray(b * 3, b * 3 + 3)]);
      expect(Array.from(out.subarray(b * 4, b * 4 + 4))).toEqual(Array.from(single.output));
      expect(Array.from(states.subarray(b * S, (b + 1) * S))).toEqual(Array.from(single.state));
    }
  });

  it('leaves its arguments untouched in step', () => {
    const m = smallModel(3);
    const s = createState(m);
    const x = new Float32Array([1, 2, 3]);
    const r = step(m, s, [x]);
    expect(Array.from(s)).toEqual(new Array(stateSize(m)).fill(0));
    expect(Array.from(x)).toEqual([1, 2, 3]);
    expect(r.state).not.toBe(s);
  });

  it('ends a softmax head in a probability vector', () => {
    const m = smallModel(5);
    const outs = runSequence(m, [[new Float32Array([1, 0, -1])], [new Float32Array([0.5, 0.5, 0.5])]]);
    for (const o of outs) {
      expect(o.length).toBe(outputSize(m));
      expect(o.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    }
  });

  it('concatenates branches in order for a multi-input model', () => {
    const rnd = prng(11);
    const a = randomLstm(2, 3, rnd);
    const b = randomGru(4, 2, rnd);
    const multi: Model = {
      name: 'multi',
      source: 'test',
      inputs: [
        { name: 'a', size: 2 },
        { name: 'b', size: 4 },
      ],
      branches: [
        { input: 'a', layers: [a] },
        { input: 'b', layers: [b] },
      ],
      head: [],
    };
    const only = (layer: typeof a | typeof b, name: string, size: number): Model => ({
      name,
      source: 'test',
      inputs: [{ name, size }],
      branches: [{ input: name, layers: [layer] }],
      head: [],
    });
    const xa = new Float32Array([0.3, -0.7]);
    const xb = new Float32Array([1, 2, 3, 4]);
    const out = step(multi, createState(multi), [xa, xb]).output;
    const ya = step(only(a, 'a', 2), new Float32Array(6), [xa]).output;
    const yb = step(only(b, 'b', 4), new Float32Array(2), [xb]).output;
    expect(Array.from(out)).toEqual([...ya, ...yb]);
  });

  it('refuses inconsistent models with a message naming the layer', () => {
    const m = smallModel(1);
    const broken: Model = {
      ...m,
      branches: [{ input: 'x', layers: [m.branches[0].layers[0], randomGru(4, 5, prng(2))] }],
    };
    expect(() => stateSize(broken)).toThrow(ModelInvalidError);
    expect(() => stateSize(broken)).toThrow('branch 0 layer 1 (gru) takes 4 inputs but receives 5');
  });

  it('fingerprints the numbers, not the name', () => {
    const a = smallModel(1);
    const renamed = { ...a, name: 'other' };
    const changed = smallModel(2);
    expect(modelFingerprint(renamed)).toBe(modelFingerprint(a));
    expect(modelFingerprint(changed)).not.toBe(modelFingerprint(a));
    expect(modelFingerprint(a)).toMatch(/^[0-9a-f]{64}$/);
  });
});
