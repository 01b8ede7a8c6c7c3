import { join } from 'node:path';
import { firstValueFrom, toArray } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { runReplay } from '../../src/commands/replay.js';
import { EventTooDeepError } from '../../src/errors.js';
import { checkJsonDepth, DEFAULT_MAX_JSON_DEPTH, jsonDepth } from '../../src/events/jsonDepth.js';
import { kafkaEnvelope } from '../../src/sources/kafkaEnvelope.js';
import { ndjsonFile } from '../../src/sources/ndjsonFile.js';
import { capture, parseNdjson, readNdjson } from '../helpers/cli.js';
import { tempDir, writeLines } from '../helpers/fixtures.js';
import { tinyLstm } from '../helpers/models.js';

const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
/** A valid event carrying an extra field nested `depth` deep; the whole text is depth + 1 deep. */
const eventWithField = (depth: number) => `{"key":"a","ts":1,"features":[1,2,3],"x":${nested(depth)}}`;

let dir: string;
beforeAll(async () => {
  dir = await tempDir('json-depth');
});

describe('jsonDepth', () => {
  it('counts nesting of arrays and objects, not brackets inside strings', () => {
    expect(jsonDepth('1')).toBe(0);
    expect(jsonDepth('"[[[{{{"')).toBe(0);
    expect(jsonDepth('{"key":"a","features":[1,2]}')).toBe(2);
    expect(jsonDepth('[{"a":{"b":[[]]}}, []]')).toBe(5);
    expect(jsonDepth('{"k":"\\"[[[[","v":[1]}')).toBe(2);
    expect(jsonDepth('{"k":"\\\\","v":[[1]]}')).toBe(3);
    // Unbalanced or garbage text still gets an answer; JSON.parse reports it as malformed later.
    expect(jsonDepth(']]]]{')).toBe(1);
  });

  it('stops scanning as soon as the limit is passed', () => {
    expect(jsonDepth(nested(1_000_000), 40)).toBe(41);
  });

  it('checkJsonDepth throws EVENT_TOO_DEEP over the limit, naming it', () => {
    expect(() => checkJsonDepth(nested(DEFAULT_MAX_JSON_DEPTH))).not.toThrow();
    expect(() => checkJsonDepth(nested(DEFAULT_MAX_JSON_DEPTH + 1))).toThrow(EventTooDeepError);
    expect(() => checkJsonDepth(nested(5), 4)).toThrow(/nested deeper than 4 levels/);
    try {
      checkJsonDepth(nested(5000));
    } catch (err) {
      expect((err as EventTooDeepError).code).toBe('EVENT_TOO_DEEP');
    }
  });
});

describe('the depth limit where raw event text comes in', () => {
  it('the Kafka envelope rejects an over-deep value (keyed or not) before parsing it', () => {
    for (const key of [null, Buffer.from('a')]) {
      const out = kafkaEnvelope('in', 0, { key, value: Buffer.from(eventWithField(5000)), offset: '7' });
      expect(out).toMatchObject({ kind: 'rejected', code: 'EVENT_TOO_DEEP', raw: eventWithField(5000) });
      const ok = kafkaEnvelope('in', 0, { key, value: Buffer.from(eventWithField(3)), offset: '8' });
      expect(ok).toMatchObject({ event: { key: 'a', ts: 1 } });
      // The limit is the caller's.
      const tight = kafkaEnvelope('in', 0, { key, value: Buffer.from(eventWithField(3)), offset: '9' }, 3);
      expect(tight).toMatchObject({ kind: 'rejected', code: 'EVENT_TOO_DEEP' });
    }
  });

  it('the NDJSON source rejects an over-deep line with its position; other lines pass as raw text', async () => {
    const file = await writeLines(join(dir, 'deep.ndjson'), [eventWithField(2), nested(100)]);
    const items = await firstValueFrom(ndjsonFile(file).pipe(toArray()));
    expect(items).toEqual([
      { raw: eventWithField(2), position: { kind: 'line', file, line: 1 } },
      {
        kind: 'rejected',
        code: 'EVENT_TOO_DEEP',
        reason: expect.stringMatching(/nested deeper than 32 levels/),
        raw: nested(100),
        position: { kind: 'line', file, line: 2 },
      },
    ]);
  });

  it('replay reports and dead-letters an over-deep line in its place and goes on', async () => {
    const input = await writeLines(join(dir, 'replay-deep.ndjson'), [
      '{"key":"a","ts":1,"features":[1,2,3]}',
      eventWithField(5000),
      '{"key":"a","ts":2,"features":[1,2]}',
      '{"key":"a","ts":3,"features":[1,2,3]}',
      eventWithField(4),
    ]);
    const stdout = capture();
    const stderr = capture();
    const deadLetter = join(dir, 'replay-deep.dead.ndjson');
    const summary = await runReplay({
      model: tinyLstm(),
      input,
      deadLetter,
      maxJsonDepth: 4,
      stdout: stdout.stream,
      stderr: stderr.stream,
    });
    expect(summary).toMatchObject({ events: 5, predictions: 2, rejected: 3 });
    expect(parseNdjson(stdout.text()).map((p) => p['seq'])).toEqual([1, 2]);
    expect(stderr.text().trimEnd().split('\n')).toEqual([
      'line 2: the event is nested deeper than 4 levels (arrays and objects); send a flat event',
      'line 3: features has 2 values, the model takes 3',
      'line 5: the event is nested deeper than 4 levels (arrays and objects); send a flat event',
      'replayed 5 events: 2 predictions, 3 rejected',
    ]);
    const dead = await readNdjson(deadLetter);
    expect(dead.map((d) => [d['line'], d['code']])).toEqual([
      [2, 'EVENT_TOO_DEEP'],
      [3, 'EVENT_WRONG_SIZE'],
      [5, 'EVENT_TOO_DEEP'],
    ]);
    // The dead letter keeps the text as received: a string, which nothing recurses over.
    expect(dead[0]['raw']).toBe(eventWithField(5000));
  });
});
