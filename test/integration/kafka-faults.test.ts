// Fault tests of the Kafka pipeline against a real broker; each checks every prediction against
// the offline replay. CI sizes by default; `npm run kafka:faults -- --events 100000` runs large ones.
import { describe, it } from 'vitest';
import { deliveryModes, requireBroker } from '../helpers/kafka.js';
import { killScenario, lostLocalStateScenario, stopStartScenario } from '../helpers/kafkaFaults.js';

const size = {
  events: Number(process.env.KAFKA_FAULTS_EVENTS ?? 6000),
  keys: Number(process.env.KAFKA_FAULTS_KEYS ?? 500),
  faults: Number(process.env.KAFKA_FAULTS_FAULTS ?? 5),
  partitions: 6,
};
const report = (name: string, figures: object) =>
  process.stdout.write(
    `[kafka-faults] ${name} ${JSON.stringify(figures, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}\n`,
  );

// Both delivery modes, on whichever client is under test.
const modes = deliveryModes;

// Each scenario runs in its delivery modes at once: on topics and groups of their own they share
// nothing but the broker, and most of their time is waiting (session timeouts, rejoins, catch-up).
describe('Kafka faults: stop/start under load', () => {
  it.concurrent.for(modes)(
    '$mode: three instances stopped and started under load: every key complete, none double-stepped',
    { timeout: 600_000 },
    async ({ mode, exactlyOnce }, { expect }) => {
      await requireBroker();
      const r = await stopStartScenario({ ...size, instances: 3, exactlyOnce });
      report(`stop/start ${mode}`, r);
      expect(r).toMatchObject({ missing: 0, divergent: 0, lag: 0n, deadLetters: 0 });
      if (exactlyOnce) expect(r.repeated).toBe(0);
    },
  );
});

describe('Kafka faults: SIGKILL under load', () => {
  it.concurrent.for(modes)(
    '$mode: instances SIGKILLed mid-batch and restarted: 0 lost, 0 double-stepped',
    { timeout: 600_000 },
    async ({ mode, exactlyOnce }, { expect }) => {
      await requireBroker();
      const r = await killScenario({ ...size, instances: 2, exactlyOnce });
      report(`SIGKILL ${mode}`, r);
      expect(r).toMatchObject({ missing: 0, divergent: 0, lag: 0n, deadLetters: 0 });
      // A read_committed consumer sees each prediction exactly once.
      if (exactlyOnce) expect(r.repeated).toBe(0);
    },
  );
});

describe('Kafka faults: local state lost', () => {
  it.concurrent.for(modes)(
    '$mode: local LMDB deleted between runs: state restored from the changelog, 0 divergence',
    { timeout: 600_000 },
    async ({ mode, exactlyOnce }, { expect }) => {
      await requireBroker();
      const r = await lostLocalStateScenario({ ...size, exactlyOnce });
      report(`lost LMDB ${mode}`, r);
      expect(r).toMatchObject({ missing: 0, divergent: 0, repeated: 0 });
      expect(r.restored).toBeGreaterThanOrEqual(r.keysAfterHalf);
    },
  );
});
