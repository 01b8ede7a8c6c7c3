import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runReplay } from '../../src/commands/replay.js';
import { createState, step } from '../../src/model/index.js';
import { capture, parseNdjson, readNdjson } from '../helpers/cli.js';
import { REPLAY_LINES, tempDir, writeLines } from '../helpers/fixtures.js';
import { tinyLstm } from '../helpers/models.js';

// Replay's output is compared bit for bit with the reference `step`: run it on the reference
// kernel (the default kernels' numerics are covered by kernels.test.ts and nativeKernel.test.ts).
process.env.CELLSTREAM_KERNEL = 'js';

let dir: string;
let input: string;
beforeAll(async () => {
  dir = await tempDir('replay');
  input = await writeLines(join(dir, 'events.ndjson'), REPLAY_LINES);
});

describe('runReplay', () => {
  it('writes a prediction per applied line, reports and dead-letters rejected lines, and sums up', async () => {
    const model = tinyLstm();
    const stdout = capture();
    const stderr = capture();
    const deadLetter = join(dir, 'dead.ndjson');
    const summary = await runReplay({
      model,
      input,
      deadLetter,
      stdout: stdout.stream,
      stderr: stderr.stream,
    });

    expect(summary).toEqual({
      events: 6,
      predictions: 4,
      rejected: 2,
      duplicates: 0,
      repeated: 0,
      expired: 0,
      stateResets: 0,
    });
    const a1 = step(model, createState(model), [Float32Array.from([0.1, 0.2, 0.3])]);
    const a2 = step(model, a1.state, [Float32Array.from([0.5, 0.5, 0.5])]);
    const b = step(model, createState(model), [Float32Array.from([0, 0, 0])]);
    expect(parseNdjson(stdout.text())).toEqual([
      { key: 'a', ts: 1000, seq: 1, model: 'tiny@1', output: Array.from(a1.output) },
      { key: 'b', ts: Date.UTC(2024, 10, 27, 10), seq: 1, model: 'tiny@1', output: expect.any(Array) },
      { key: 'a', ts: 5000, seq: 2, model: 'tiny@1', output: Array.from(a2.output) },
      { key: 'b', ts: 6000, seq: 1, model: 'tiny@1', output: Array.from(b.output) },
    ]);
    const err = stderr.text().trimEnd().split('\n');
    expect(err[0]).toMatch(/^line 3: malformed JSON: /);
    expect(err.slice(1)).toEqual([
      'line 5: features has 2 values, the model takes 3',
      'replayed 6 events: 4 predictions, 2 rejected',
    ]);
    const dead = await readNdjson(deadLetter);
    expect(dead).toEqual([
      {
        line: 3,
        code: 'EVENT_MALFORMED_JSON',
        reason: expect.stringMatching(/^malformed JSON: /),
        raw: REPLAY_LINES[2],
      },
      {
        line: 5,
        code: 'EVENT_WRONG_SIZE',
        reason: 'features has 2 values, the model takes 3',
        raw: REPLAY_LINES[4],
      },
    ]);
  });

  it('writes to --output instead of stdout and gives the same predictions for any batch size', async () => {
    const outputs: string[] = [];
    for (const maxBatch of [1, 3, 256]) {
      const output = join(dir, `preds-${maxBatch}.ndjson`);
      const stdout = capture();
      await runReplay({
        model: tinyLstm(),
        input,
        output,
        maxBatch,
        stdout: stdout.stream,
        stderr: capture().stream,
      });
      expect(stdout.text()).toBe('');
      outputs.push(await readFile(output, 'utf8'));
    }
    expect(outputs[0].split('\n')).toHaveLength(5);
    expect(new Set(outputs).size).toBe(1);
  });

  it('refuses a missing events file with a typed error', async () => {
    await expect(
      runReplay({
        model: tinyLstm(),
        input: join(dir, 'nope.ndjson'),
        stdout: capture().stream,
        stderr: capture().stream,
      }),
    ).rejects.toMatchObject({
      code: 'USAGE',
      message: expect.stringMatching(/^cannot read the events file .*nope\.ndjson' \(ENOENT\)$/),
    });
  });
});
