import { it } from 'vitest';
import { createState, stateSize } from '../../src/model/index.js';
import { referenceKernel, selectKernel } from '../../src/model/kernels/index.js';
import type { Model } from '../../src/model/types.js';
import { prng, randomArray, randomGru, randomLstm, smallModel } from './modelTestUtils.js';

it('scratch', () => {
  const k = selectKernel();
  console.log(k.name);
  const rnd = prng(3);
  const models: [string, Model][] = [
    ['small', smallModel()],
    ['lstm64', { name: 'm', source: 't', inputs: [{ name: 'x', size: 16 }], branches: [{ input: 'x', layers: [randomLstm(16, 64, rnd)] }], head: [] }],
    ['lstm7', { name: 'm', source: 't', inputs: [{ name: 'x', size: 5 }], branches: [{ input: 'x', layers: [randomLstm(5, 7, rnd, {peephole: {i: randomArray(7, rnd), f: randomArray(7, rnd), o: randomArray(7, rnd)}})] }], head: [] }],
    ['gru7b', { name: 'm', source: 't', inputs: [{ name: 'x', size: 5 }], branches: [{ input: 'x', layers: [randomGru(5, 7, rnd, {linearBeforeReset: false})] }], head: [] }],
  ];
  for (const [name, m] of models) {
    const B = 3;
    const S = stateSize(m);
    const s1 = new Float32Array(B * S);
    const s2 = new Float32Array(B * S);
    let maxErr = 0;
    for (let t = 0; t < 50; t++) {
      const x = randomArray(B * m.inputs[0].size, rnd, 1);
      const o1 = referenceKernel.stepBatch(m, s1, [x], B);
      const o2 = k.stepBatch(m, s2, [x], B);
      for (let i = 0; i < o1.length; i++) maxErr = Math.max(maxErr, Math.abs(o1[i] - o2[i]));
    }
    console.log(name, maxErr, createState(m).length);
  }
});
