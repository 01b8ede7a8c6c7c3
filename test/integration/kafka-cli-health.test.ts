// `cellstream kafka` as a child process against the real broker: its health endpoints (/healthz,
// /readyz, /metrics, /v1/kafka), a health port already taken, and SIGTERM in its first moments
// (before the model is loaded), which must shut it down cleanly (exit 0) instead of killing it.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureTopics } from '../../src/kafka/topics.js';
import { ensureBuilt, ROOT } from '../helpers/build.js';
import {
  createInputTopic,
  eventMessages,
  kafkaCommandArgs,
  makeEvents,
  produce,
  requireBroker,
  type Topics,
  testKafka,
  waitForCatchUp,
  waitUntil,
  withFixtureAdmin,
} from '../helpers/kafka.js';
import { child } from '../helpers/kafkaFaults.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function stateDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cellstream-cli-health-'));
  dirs.push(d);
  return d;
}

function kafkaArgs(t: Topics, dir: string, extra: readonly string[] = []): string[] {
  return [join(ROOT, 'bin', 'cellstream.js'), ...kafkaCommandArgs(t, ['--state-dir', dir, ...extra])];
}

describe('cellstream kafka: health and signals', () => {
  it('serves /healthz, /readyz, /metrics and /v1/kafka while consuming', async () => {
    await requireBroker();
    ensureBuilt();
    const t = await createInputTopic('cli-health', 3);
    // A changelog holding a record that does not decode: the restore goes past it, says so, counts it.
    await withFixtureAdmin((admin) =>
      ensureTopics(admin, [{ topic: t.changelogTopic, partitions: 3, compacted: true }]),
    );
    const producer = testKafka().producer();
    await producer.connect();
    const [garbage] = await producer
      .send({
        topic: t.changelogTopic,
        acks: -1,
        messages: [{ key: 'garbage', value: 'not a state record', partition: 0 }],
      })
      .finally(() => producer.disconnect());
    const instance = await child(t, await stateDir(), false);
    try {
      expect(instance.http).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      await produce(t.inputTopic, eventMessages(makeEvents(600, 60, 41)));
      await waitForCatchUp(t, 120_000);
      expect((await fetch(`${instance.http}/healthz`)).status).toBe(200);
      await waitUntil(async () => (await fetch(`${instance.http}/readyz`)).status === 200, 'ready', 60_000);
      const health = (await (await fetch(`${instance.http}/v1/kafka`)).json()) as Record<string, unknown>;
      expect(health).toMatchObject({ ready: true, member: true, partitions: [0, 1, 2], totalLag: 0 });
      expect(health.restores).toBeGreaterThanOrEqual(1);
      const metrics = await (await fetch(`${instance.http}/metrics`)).text();
      for (const line of [
        /^cellstream_kafka_consumer_lag\{partition="0"\} 0$/m,
        /^cellstream_kafka_seconds_since_last_commit \d/m,
        /^cellstream_kafka_ready 1$/m,
        /^cellstream_kafka_stalled 0$/m,
        /^cellstream_kafka_group_member 1$/m,
        /^cellstream_kafka_broker_connected 1$/m,
        /^cellstream_kafka_rebalances_total [1-9]/m,
        /^cellstream_kafka_restore_seconds_count [1-9]/m,
        /^cellstream_kafka_consumer_rejoins_total 0$/m,
        /^cellstream_predictions_out_total 600$/m,
        /^cellstream_events_in_total 600$/m,
        /^cellstream_kafka_changelog_unreadable_records_total 1$/m,
      ]) {
        expect(metrics).toMatch(line);
      }
      const warning = instance
        .log()
        .split('\n')
        .filter((l) => l.includes('"event":"changelog-record-unreadable"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(warning).toEqual([
        expect.objectContaining({
          level: 'warn',
          topic: t.changelogTopic,
          partition: 0,
          offset: garbage!.baseOffset,
          key: 'garbage',
          kind: 'undecodable',
        }),
      ]);
      expect(metrics).toMatch(/# TYPE cellstream_kafka_consumer_crashes_total counter/);
      expect((await fetch(`${instance.http}/nope`)).status).toBe(404);
    } finally {
      await instance.stop();
    }
  }, 180_000);

  it('refuses to start (exit 1, says why) when its health port is taken', async () => {
    ensureBuilt();
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const t = await createInputTopic('cli-port', 1);
      const proc = spawn(process.execPath, kafkaArgs(t, await stateDir(), ['--http-port', String(port)]), {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      proc.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
      expect(code).toBe(1);
      expect(stderr).toMatch(/EADDRINUSE/);
    } finally {
      blocker.close();
    }
  }, 120_000);

  it('SIGTERM in its first moments (before the model is loaded) shuts it down cleanly: exit 0', async () => {
    await requireBroker();
    ensureBuilt();
    const t = await createInputTopic('cli-early-term', 1);
    const proc = spawn(process.execPath, kafkaArgs(t, await stateDir(), ['--http-port', '0']), {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      proc.on('exit', (code, signal) => resolve([code, signal])),
    );
    // As soon as the launcher says it is starting: it installs the signal handlers first thing.
    await waitUntil(() => stderr.includes('"event":"starting"'), 'the starting line', 30_000);
    proc.kill('SIGTERM');
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(stderr).toMatch(/"event":"stopped"/);
  }, 120_000);
});
