import { KeyedStepper } from '../../dist/engine/keyedStepper.js';
import { selectKernel } from '../../dist/model/kernels/index.js';
import { MemoryStateStore } from '../../dist/state/memoryStore.js';

const KEYS = 1000;

/**
 * The engine on the default kernel: per event, state look-up in the in-memory store, one step,
 * the prediction object and the state written back. Events cycle over 1000 keys; a batch holds
 * `batch` distinct keys, so it is one kernel call.
 */
export function engineImpl({ ttl = false } = {}) {
  return {
    impl: ttl ? 'cellstream-engine-ttl' : 'cellstream-engine',
    async create(model, batch, inputs) {
      const stepper = new KeyedStepper({
        model,
        store: new MemoryStateStore(),
        kernel: selectKernel(),
        // With `ttl`, the TTL sweep's share too: a TTL nothing reaches, so every batch end reads
        // its share of the 1000 stored keys and expires none.
        ...(ttl ? { ttl: { ttlMs: 1e12, clock: 'event' } } : {}),
      });
      const I = model.inputs[0].size;
      // Envelopes are built before the clock starts: decoding is the source's cost, not the engine's.
      let key = 0;
      const ring = inputs.map((x, t) =>
        Array.from({ length: batch }, (_, b) => ({
          event: { key: `k${key++ % KEYS}`, ts: t, features: Array.from(x.subarray(b * I, (b + 1) * I)) },
          position: { kind: 'none' },
        })),
      );
      let next = 0;
      return {
        step: () => stepper.process(ring[next++ % ring.length]),
        reset() {},
        dispose() {},
      };
    },
  };
}
