import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { kafkaPipelineOptions } from '../../src/commands/kafka.js';
import { eventLimitsOf } from '../../src/config/eventLimits.js';
import { loadConfig } from '../../src/config/load.js';
import { saveCellstreamModel } from '../../src/formats/cellstream/index.js';
import { capture } from '../helpers/cli.js';
import { tempDir } from '../helpers/fixtures.js';
import { tinyLstm } from '../helpers/models.js';

async function yamlFile(text: string): Promise<string> {
  const path = join(await tempDir('limits-config'), 'cellstream.yaml');
  await writeFile(path, text);
  return path;
}

describe('event limits: configuration', () => {
  it('defaults to 512-byte keys, 128-byte ids, ts at most a day ahead and 8 ids per key', async () => {
    const config = await loadConfig({});
    expect(config.events).toEqual({ maxKeyBytes: 512, maxIdBytes: 128, maxTsAhead: '1d' });
    expect(config.state.idWindow).toBe(8);
    expect(eventLimitsOf(config.events)).toEqual({
      maxKeyBytes: 512,
      maxIdBytes: 128,
      maxTsAheadMs: 86_400_000,
    });
  });

  it("takes other values, 'off' for the ts bound, and refuses what no store can hold", async () => {
    const config = await loadConfig({
      file: await yamlFile('events:\n  maxKeyBytes: 1977\n  maxTsAhead: "off"\nstate:\n  idWindow: 32\n'),
    });
    expect(eventLimitsOf(config.events)).toEqual({
      maxKeyBytes: 1977,
      maxIdBytes: 128,
      maxTsAheadMs: undefined,
    });
    expect(config.state.idWindow).toBe(32);
    await expect(loadConfig({ file: await yamlFile('events:\n  maxKeyBytes: 1978\n') })).rejects.toThrow(
      /events\.maxKeyBytes .*<=1977/,
    );
    await expect(loadConfig({ file: await yamlFile('events:\n  maxTsAhead: soon\n') })).rejects.toThrow(
      /events\.maxTsAhead .*'off'/,
    );
    await expect(loadConfig({ file: await yamlFile('state:\n  idWindow: 0\n') })).rejects.toThrow(
      /state\.idWindow/,
    );
  });

  it('cellstream kafka bounds ts a day ahead unless told otherwise', () => {
    const base = { brokers: 'b:1', inputTopic: 'in', outputTopic: 'out', groupId: 'g', stateDir: 'd' };
    expect(kafkaPipelineOptions(tinyLstm(), base).limits).toEqual({ maxTsAheadMs: 86_400_000 });
    expect(kafkaPipelineOptions(tinyLstm(), { ...base, maxTsAhead: 'off', maxKeyBytes: 100 }).limits).toEqual(
      {
        maxKeyBytes: 100,
        maxTsAheadMs: undefined,
      },
    );
  });
});

describe('event limits: replay flags', () => {
  async function replay(lines: string[], flags: string[]) {
    const dir = await tempDir('limits-replay');
    const model = join(dir, 'model.cellstream.json');
    await saveCellstreamModel(tinyLstm(), model);
    const input = join(dir, 'events.ndjson');
    await writeFile(input, `${lines.join('\n')}\n`);
    const stdout = capture();
    const stderr = capture();
    const code = await main(['node', 'cellstream', 'replay', '--model', model, '--input', input, ...flags], {
      stdout: stdout.stream,
      stderr: stderr.stream,
    });
    return { code, stdout: stdout.text(), stderr: stderr.text() };
  }
  const far = JSON.stringify({ key: 'a', ts: Date.now() + 10 * 86_400_000, features: [1, 2, 3] });
  const near = JSON.stringify({ key: 'a', ts: Date.now(), features: [1, 2, 3] });

  it('has no ts bound unless --max-ts-ahead is given', async () => {
    expect((await replay([far], [])).code).toBe(0);
    const bounded = await replay([far, near], ['--max-ts-ahead', '1d']);
    expect(bounded.code).toBe(2);
    expect(bounded.stderr).toMatch(/line 1: .*EVENT_TS_IN_FUTURE|line 1: .*ahead of this server's clock/);
    expect(bounded.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('takes --max-key-bytes and --id-window', async () => {
    const long = JSON.stringify({ key: 'k'.repeat(40), ts: 1, features: [1, 2, 3] });
    expect((await replay([long], ['--max-key-bytes', '39'])).code).toBe(2);
    expect((await replay([long], ['--max-key-bytes', '40'])).code).toBe(0);
    const ids = ['a', 'b', 'a'].map((id, i) => JSON.stringify({ key: 'k', ts: i, features: [1, 2, 3], id }));
    // With a window of 1, 'a' is forgotten once 'b' is applied: three predictions; with 2, a duplicate.
    expect((await replay(ids, ['--id-window', '1'])).stdout.trim().split('\n')).toHaveLength(3);
    expect((await replay(ids, ['--id-window', '2'])).stdout.trim().split('\n')).toHaveLength(2);
  });
});
