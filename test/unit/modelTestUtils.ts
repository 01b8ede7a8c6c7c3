// Re-exports the seeded random-model builders from test/helpers/models.ts, where they now live, for
// the tests that still import them from here (kernels.test.ts). New code imports test/helpers/models.ts.
export { prng, randomArray, randomGru, randomLstm, smallModel } from '../helpers/models.js';
