// The Kafka edges against a real broker: a poison record nested thousands deep is dead-lettered
// (EVENT_TOO_DEEP) while the consumer goes on, and `cellstream kafka` stops cleanly on a SIGTERM
// sent in its first moments.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logLevel } from 'kafkajs';
import { beforeAll, describe, expect, it } from 'vitest';
import { startKafkaPipeline } from '../../src/pipelines/kafkaPipeline.js';
import { DEAD_LETTER_HEADERS } from '../../src/sinks/kafkaSink.js';
import { ensureBuilt, ROOT } from '../helpers/build.js';
import {
  brokers,
  createInputTopic,
  eventMessages,
  loadTestModel,
  MODEL_FILE,
  makeEvents,
  produce,
  readTopic,
  requireBroker,
  waitForCatchUp,
} from '../helpers/kafka.js';

beforeAll(ensureBuilt);

const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

describe('Kafka edges', () => {
  it('dead-letters a record nested thousands deep with EVENT_TOO_DEEP and serves the others', async () => {
    await requireBroker();
    const t = await createInputTopic('deep', 1);
    const events = makeEvents(50, 5, 3);
    const poison = [
      { key: 'd1', value: nested(100_000) },
      { key: null, value: `{"key":"d2","ts":1,"features":[1,2,3,4],"x":${nested(5000)}}` },
    ];
    const messages = eventMessages(events);
    await produce(t.inputTopic, [...messages.slice(0, 25), ...poison, ...messages.slice(25)]);
    const stateDir = await mkdtemp(join(tmpdir(), 'cellstream-kafka-deep-'));
    const pipeline = await startKafkaPipeline({
      model: await loadTestModel(),
      brokers,
      ...t,
      stateDir,
      maxWaitTimeInMs: 100,
      logLevel: logLevel.ERROR,
    });
    try {
      await waitForCatchUp(t);
    } finally {
      await pipeline.stop();
      await rm(stateDir, { recursive: true, force: true });
    }
    expect(await readTopic(t.outputTopic)).toHaveLength(events.length);
    const dead = await readTopic(t.deadLetterTopic);
    expect(dead.map((d) => d.headers[DEAD_LETTER_HEADERS.code]?.toString())).toEqual([
      'EVENT_TOO_DEEP',
      'EVENT_TOO_DEEP',
    ]);
    expect(dead.map((d) => d.value)).toEqual(poison.map((p) => p.value));
  });

  it('`cellstream kafka` stops cleanly (exit 0) on a SIGTERM in its first moments', async () => {
    await requireBroker();
    const t = await createInputTopic('signal', 1);
    const stateDir = await mkdtemp(join(tmpdir(), 'cellstream-kafka-signal-'));
    // How long this machine, loaded as it is now, takes to start Node and install the handlers as
    // the bin does (an ES module importing shutdownSignals.js).
    const t0 = performance.now();
    const probe = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { shutdownSignal } from ${JSON.stringify(join(ROOT, 'dist', 'commands', 'shutdownSignals.js'))};
         shutdownSignal(); process.stdout.write('x');`,
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    await once(probe.stdout, 'data');
    const bootMs = performance.now() - t0;
    await once(probe, 'exit');

    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'bin', 'cellstream.js'),
        'kafka',
        '--model',
        MODEL_FILE,
        '--kafka-brokers',
        brokers.join(','),
        '--input-topic',
        t.inputTopic,
        '--output-topic',
        t.outputTopic,
        '--group-id',
        t.groupId,
        '--state-dir',
        stateDir,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    // The command's lifecycle lines go to stderr.
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    // Well after Node is up, before the CLI has loaded (about half a second) and joined the group.
    await new Promise((r) => setTimeout(r, Math.min(1.5 * bootMs + 100, 450)));
    child.kill('SIGTERM');
    const [code, signal] = await once(child, 'exit');
    await rm(stateDir, { recursive: true, force: true });
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    const steps = stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{"event"'))
      .map((l) => JSON.parse(l).event);
    expect(steps).toEqual(['started', 'stopping', 'stopped']);
  });
});
