import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { firstValueFrom, take, toArray } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { deadLetter, deadLetterFile } from '../../src/sinks/deadLetter.js';
import { NdjsonSink, ndjsonFileSink } from '../../src/sinks/ndjson.js';
import { ndjsonFile } from '../../src/sources/ndjsonFile.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cellstream-io-'));
});

describe('ndjsonFile', () => {
  it('emits each non-blank line with its 1-based line number and absolute path', async () => {
    const file = join(dir, 'events.ndjson');
    await writeFile(file, '\uFEFF{"a":1}\r\n\n  \n{"b":2}\n{"c":3}');
    const envelopes = await firstValueFrom(ndjsonFile(file).pipe(toArray()));
    expect(envelopes).toEqual([
      { raw: '{"a":1}', position: { kind: 'line', file, line: 1 } },
      { raw: '{"b":2}', position: { kind: 'line', file, line: 4 } },
      { raw: '{"c":3}', position: { kind: 'line', file, line: 5 } },
    ]);
  });

  it('stops reading when unsubscribed', async () => {
    const file = join(dir, 'many.ndjson');
    await writeFile(file, Array.from({ length: 100_000 }, (_, i) => `{"i":${i}}`).join('\n'));
    const first = await firstValueFrom(ndjsonFile(file).pipe(take(3), toArray()));
    expect(first.map((e) => e.raw)).toEqual(['{"i":0}', '{"i":1}', '{"i":2}']);
  });

  it('errors when the file cannot be read', async () => {
    await expect(firstValueFrom(ndjsonFile(join(dir, 'missing.ndjson')))).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});

describe('NdjsonSink', () => {
  it('writes one JSON line per value and leaves a shared stream open', async () => {
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (c) => chunks.push(String(c)));
    const sink = new NdjsonSink(out, { end: false });
    sink.write({ key: 'a', output: [0.5] });
    sink.write({ key: 'b', output: [1] });
    await sink.close();
    expect(chunks.join('')).toBe('{"key":"a","output":[0.5]}\n{"key":"b","output":[1]}\n');
    expect(out.writableEnded).toBe(false);
  });

  it('writes a file and surfaces a write error on close', async () => {
    const file = join(dir, 'preds.ndjson');
    const sink = ndjsonFileSink(file);
    sink.write({ n: 1 });
    await sink.close();
    expect(await readFile(file, 'utf8')).toBe('{"n":1}\n');

    const bad = ndjsonFileSink(join(dir, 'no-such-dir', 'x.ndjson'));
    bad.write({ n: 1 });
    await expect(bad.close()).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('dead letters', () => {
  const rejected = {
    kind: 'rejected',
    code: 'EVENT_WRONG_SIZE',
    reason: 'features has 2 values, the model takes 3',
    raw: '{"key":"a","ts":1,"features":[1,2]}',
  } as const;

  it('records the line, code, reason and raw text, in that order', async () => {
    const file = join(dir, 'dead.ndjson');
    const sink = deadLetterFile(file);
    sink.write({ ...rejected, position: { kind: 'line', file: '/x', line: 7 } });
    await sink.close();
    expect(await readFile(file, 'utf8')).toBe(
      '{"line":7,"code":"EVENT_WRONG_SIZE","reason":"features has 2 values, the model takes 3","raw":"{\\"key\\":\\"a\\",\\"ts\\":1,\\"features\\":[1,2]}"}\n',
    );
  });

  it('records a Kafka position as topic, partition and offset', () => {
    expect(
      deadLetter({ ...rejected, position: { kind: 'offset', topic: 't', partition: 2, offset: '41' } }),
    ).toEqual({
      topic: 't',
      partition: 2,
      offset: '41',
      code: rejected.code,
      reason: rejected.reason,
      raw: rejected.raw,
    });
  });
});
