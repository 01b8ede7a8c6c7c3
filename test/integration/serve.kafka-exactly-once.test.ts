// `serve` with `kafka.exactlyOnce: true` against a real broker: the config reaches the pipeline, so
// predictions are written in transactions (each leaves a commit marker in the output partitions)
// and a read_committed consumer sees every prediction once, as the offline replay computes it.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server/serve.js';
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
  waitForCatchUp,
  withAdmin,
} from '../helpers/kafka.js';
import { startTestServer } from '../helpers/serve.js';

describe('serve with Kafka, exactly once', () => {
  let server: RunningServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('writes predictions in transactions that a read_committed consumer sees once each', async () => {
    await requireBroker();
    const t = await createInputTopic('serve-eos', 2);
    server = await startTestServer({
      model: { path: MODEL_FILE },
      state: { store: 'lmdb', path: join(await tempDir('serve-eos'), 'state') },
      kafka: { brokers, ...t, exactlyOnce: true, maxBatch: 100, maxWaitTimeInMs: 100 },
    });

    const events = makeEvents(600, 30, 11);
    await produce(t.inputTopic, eventMessages(events));
    // The group's offsets move only when a transaction commits them with its predictions.
    await waitForCatchUp(t);

    const onTopic = await readTopic(t.outputTopic);
    const verdict = judge(await offlineReplay(await loadTestModel(), events), onTopic);
    expect(verdict).toMatchObject({ received: events.length, missing: 0, divergent: 0, repeated: 0 });
    // Commit markers take offsets of their own: without transactions the partitions would end
    // exactly at the number of predictions.
    const ends = await withAdmin((admin) => admin.fetchTopicOffsets(t.outputTopic));
    const endOffsets = ends.reduce((sum, e) => sum + Number(e.high), 0);
    expect(endOffsets).toBeGreaterThan(events.length);
  });
});
