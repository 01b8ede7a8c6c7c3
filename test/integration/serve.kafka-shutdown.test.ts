// The real `cellstream serve` bin in Kafka mode as a child process against the real broker:
// configured by a file whose Kafka settings the flags override, shut down by SIGTERM mid-stream.
// Every prediction published before the signal is on the output topic, the offsets committed are
// exactly the events processed, the consumer group is empty afterwards, and Node printed no warning.
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Prediction } from '../../src/events/types.js';
import { ensureBuilt } from '../helpers/build.js';
import { tempDir } from '../helpers/fixtures.js';
import {
  brokers,
  createInputTopic,
  eventMessages,
  judge,
  loadTestModel,
  MODEL_FILE,
  makeEvents,
  offlineReplay,
  produce,
  readTopic,
  requireBroker,
  waitUntil,
  withAdmin,
} from '../helpers/kafka.js';
import { connect, serveBin } from '../helpers/serve.js';

beforeAll(ensureBuilt);

describe('serve with Kafka: graceful shutdown of the real bin', () => {
  it('on SIGTERM finishes the batch in flight, commits exactly what it processed, leaves the group and exits 0', async () => {
    await requireBroker();
    const t = await createInputTopic('serve-stop', 3);
    const events = makeEvents(20_000, 400, 21);
    await produce(t.inputTopic, eventMessages(events));

    // The file names other topics and group; the flags must win.
    const dir = await tempDir('serve-kafka-stop');
    const file = join(dir, 'cellstream.yaml');
    await writeFile(
      file,
      [
        'kafka:',
        '  brokers: [127.0.0.1:1]',
        `  inputTopic: ${t.inputTopic}-from-file`,
        `  outputTopic: ${t.outputTopic}-from-file`,
        `  groupId: ${t.groupId}-from-file`,
        `  deadLetterTopic: ${t.deadLetterTopic}`,
        `  changelogTopic: ${t.changelogTopic}`,
        '  maxBatch: 100',
        '  maxWaitTimeInMs: 100',
        'log:',
        '  level: info',
        '',
      ].join('\n'),
    );
    const { child, url, logs, stderr } = await serveBin(
      [
        '--config',
        file,
        '--model',
        MODEL_FILE,
        '--port',
        '0',
        '--state',
        join(dir, 'state'),
        '--kafka-brokers',
        brokers.join(','),
        '--input-topic',
        t.inputTopic,
        '--output-topic',
        t.outputTopic,
        '--group-id',
        t.groupId,
      ],
      { KAFKAJS_NO_PARTITIONER_WARNING: '1' },
    );
    // Ready once in the group with its partitions restored (docs/kafka.md, Operations), which can
    // come after the HTTP port is up.
    await waitUntil(async () => (await fetch(`${url}/readyz`)).status === 200, 'serve ready', 60_000);
    const subscriber = await connect(`${url.replace('http', 'ws')}/subscribe`);
    const published: Prediction[] = [];
    subscriber.on('message', (data) => published.push(JSON.parse(data.toString())));
    const subscriberClosed = new Promise<number>((resolve) =>
      subscriber.once('close', (code) => resolve(code)),
    );

    // Signal once predictions flow, while most events are still waiting in the topic.
    await waitUntil(() => published.length > 0, 'the first prediction');
    child.kill('SIGTERM');
    const [exitCode] = await once(child, 'exit');
    expect(exitCode).toBe(0);
    expect(await subscriberClosed).toBe(1001);

    // Every prediction anyone saw is on the output topic; what is there matches the replay, with no
    // repeats (a graceful stop redelivers nothing) and, per key, no gaps.
    const onTopic = await readTopic(t.outputTopic);
    const verdict = judge(await offlineReplay(await loadTestModel(), events), onTopic);
    expect(verdict.divergent).toBe(0);
    expect(verdict.repeated).toBe(0);
    const topicSet = new Set(onTopic.map((m) => m.value));
    for (const p of published) expect(topicSet.has(JSON.stringify(p))).toBe(true);
    expect(published.length).toBeLessThanOrEqual(onTopic.length);
    const seqs = new Map<string, number[]>();
    for (const m of onTopic) {
      const p = JSON.parse(m.value) as Prediction;
      seqs.set(p.key, [...(seqs.get(p.key) ?? []), p.seq]);
    }
    for (const [key, list] of seqs) {
      expect(list, key).toEqual(Array.from({ length: list.length }, (_, i) => i + 1));
    }

    // Offsets committed = events processed; the group has no members left.
    await withAdmin(async (admin) => {
      const [committed] = await admin.fetchOffsets({ groupId: t.groupId, topics: [t.inputTopic] });
      const total = committed.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
      expect(total).toBe(onTopic.length);
      const { groups } = await admin.describeGroups([t.groupId]);
      expect(groups[0].members).toEqual([]);
      // The file's topics were never used.
      const topics = await admin.listTopics();
      expect(topics).not.toContain(`${t.outputTopic}-from-file`);
    });
    expect(logs.some((l) => l.includes('shut down: state flushed and store closed'))).toBe(true);
    // No Node process warning on either major (on Node 24 kafkajs's negative timer would print one).
    expect(stderr()).not.toMatch(/\(node:\d+\)/);
  });
});
