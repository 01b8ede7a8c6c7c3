// The broker's loss under load, against a broker of this file's own (its own port and data
// directory, so that killing it never disturbs other test files on the shared broker): SIGKILL and
// restart on its data (both delivery modes, restores longer than the session timeout), a broker away
// for longer than the session timeout, and a paused broker (SIGSTOP/SIGCONT). Every prediction is
// checked against the offline replay; the group must resume with no manual step.
// CI sizes by default; `npm run kafka:faults -- --events 30000` runs larger ones.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deliveryModes, strongestDeliveryMode, useBrokers } from '../helpers/kafka.js';
import { brokerFaultScenario } from '../helpers/kafkaBrokerFaults.js';
import type { ChildInstance } from '../helpers/kafkaFaults.js';
import { OwnBroker } from '../helpers/ownBroker.js';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const size = {
  events: env('KAFKA_FAULTS_EVENTS', 3000),
  keys: env('KAFKA_FAULTS_KEYS', 300),
  partitions: 4,
  instances: 2,
  batch: env('KAFKA_BROKER_FAULTS_BATCH', 50),
};
/** The broker's minimum session timeout; heartbeats well inside it. */
const SESSION = {
  sessionTimeout: 6000,
  heartbeatInterval: env('KAFKA_BROKER_FAULTS_HEARTBEAT_MS', 500),
};
/**
 * How long the broker stays away in the away test: past the session timeout before its restart
 * even begins (the restart, seconds of JVM start and log recovery, keeps it away longer still).
 */
const AWAY_MS = env('KAFKA_BROKER_FAULTS_AWAY_MS', SESSION.sessionTimeout + 2000);
/** How long the broker stays paused: past the session timeout, and the stall timeout (3 s) twice over. */
const PAUSE_MS = env('KAFKA_BROKER_FAULTS_PAUSE_MS', SESSION.sessionTimeout + 2000);
const report = (name: string, figures: object) =>
  process.stdout.write(
    `[kafka-broker-faults] ${name} ${JSON.stringify(figures, (_, v) => (typeof v === 'bigint' ? Number(v) : v))}\n`,
  );

let broker: OwnBroker;

beforeAll(async () => {
  broker = await OwnBroker.start();
  useBrokers([broker.address]);
}, 180_000);

afterAll(async () => {
  await broker?.stop();
}, 120_000);

describe.each(deliveryModes)(
  'broker SIGKILLed and restarted on its data ($mode)',
  ({ mode, exactlyOnce }) => {
    it('resumes by itself, restores outlasting the session timeout: 0 missing, 0 wrong, no duplicate in exactly-once', async () => {
      const r = await brokerFaultScenario(broker, exactlyOnce ? 'bkill-eos' : 'bkill', {
        ...size,
        ...SESSION,
        exactlyOnce,
        fault: 'kill',
        // Exactly-once twice (the duplicates came from a commit during the loss).
        outages: env('KAFKA_BROKER_FAULTS_OUTAGES', exactlyOnce ? 2 : 1),
        downMs: env('KAFKA_BROKER_FAULTS_DOWN_MS', 2000),
        // Longer than the session timeout (a second more is enough: the restore itself adds to it):
        // heartbeats must go on during the restore.
        slowRestoreMs: env('KAFKA_BROKER_FAULTS_SLOW_RESTORE_MS', SESSION.sessionTimeout + 1000),
      });
      report(`SIGKILL broker ${mode}`, r);
      expect(r).toMatchObject({ missing: 0, divergent: 0, lag: 0n, deadLetters: 0, exited: 0 });
      if (exactlyOnce) expect(r.repeated).toBe(0);
      expect(r.resumeSeconds).toHaveLength(r.outages);
      // Predictions came again after every return (NaN: none was sent after it).
      expect(r.firstPredictionSeconds.filter((s) => s >= 0)).toHaveLength(r.outages);
    }, 600_000);
  },
);

describe('broker away for longer than the session timeout', () => {
  // The strongest mode the client under test runs: exactly-once on kafkajs.
  const { mode, exactlyOnce } = strongestDeliveryMode;
  it(`${mode}: the group comes back by itself, 0 missing, 0 wrong${exactlyOnce ? ', 0 duplicates' : ''}`, async () => {
    const r = await brokerFaultScenario(broker, exactlyOnce ? 'baway-eos' : 'baway', {
      ...size,
      ...SESSION,
      exactlyOnce,
      fault: 'kill',
      outages: 1,
      downMs: AWAY_MS,
    });
    report(`broker away ${AWAY_MS / 1000} s ${mode}`, r);
    expect(r).toMatchObject({ missing: 0, divergent: 0, lag: 0n, deadLetters: 0, exited: 0 });
    if (exactlyOnce) expect(r.repeated).toBe(0);
  }, 600_000);
});

describe('broker paused (SIGSTOP) past the session timeout, then resumed', () => {
  it('at-least-once: /readyz turns 503 while paused (logged once) and 200 after; 0 missing, 0 wrong', async () => {
    const notReady: string[] = [];
    const readyz = async (i: ChildInstance) => {
      const res = await fetch(`${i.http}/readyz`);
      return { status: res.status, body: (await res.json()) as { reason?: string } };
    };
    const r = await brokerFaultScenario(broker, 'bpause', {
      ...size,
      ...SESSION,
      exactlyOnce: false,
      fault: 'pause',
      outages: 1,
      downMs: PAUSE_MS,
      stallTimeoutMs: 3000,
      whileDown: async (instances) => {
        // Stalled (events wait, nothing commits) or the broker silent: every instance is not ready.
        for (const i of instances) {
          const deadline = Date.now() + 20_000;
          for (;;) {
            const { status, body } = await readyz(i);
            if (status === 503) {
              notReady.push(body.reason ?? '');
              break;
            }
            if (Date.now() > deadline)
              throw new Error('an instance stayed ready while the broker was paused');
            await new Promise((res) => setTimeout(res, 200));
          }
        }
      },
      afterResume: async (instances) => {
        for (const i of instances) {
          const deadline = Date.now() + 120_000;
          for (;;) {
            const { status, body } = await readyz(i);
            if (status === 200) break;
            if (Date.now() > deadline) {
              const health = await (await fetch(`${i.http}/v1/kafka`)).text();
              throw new Error(
                `an instance did not become ready again: ${body.reason}\n${health}\n${i.log().slice(-3000)}`,
              );
            }
            await new Promise((res) => setTimeout(res, 200));
          }
          // A stall is reported once per episode, as an error that says what to do.
          const stalls = i.log().match(/"event":"stalled"/g) ?? [];
          expect(stalls.length).toBeLessThanOrEqual(1);
          if (stalls.length === 1) expect(i.log()).toMatch(/"level":"error","message":"stalled: .*restart/);
        }
      },
    });
    report(`broker paused ${PAUSE_MS / 1000} s at-least-once`, r);
    expect(notReady).toHaveLength(2);
    expect(r).toMatchObject({ missing: 0, divergent: 0, lag: 0n, deadLetters: 0, exited: 0 });
  }, 600_000);
});
