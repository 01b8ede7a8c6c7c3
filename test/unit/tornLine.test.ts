import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ndjsonAppendSink } from '../../src/sinks/ndjson.js';
import { dropTornLastLine } from '../../src/sinks/tornLine.js';
import { tempDir } from '../helpers/fixtures.js';

describe('appending after a crash', () => {
  it('cuts a torn last line off, keeps whole lines, and leaves missing files missing', async () => {
    const dir = await tempDir('torn');
    const path = join(dir, 'out.ndjson');
    expect(await dropTornLastLine(path)).toBe(0);
    await writeFile(path, '{"a":1}\n{"b":2}\n{"c":');
    expect(await dropTornLastLine(path)).toBe(5);
    expect(await readFile(path, 'utf8')).toBe('{"a":1}\n{"b":2}\n');
    expect(await dropTornLastLine(path)).toBe(0);
    // A torn line longer than the read chunk, and a file that is one torn line.
    await writeFile(path, `{"a":1}\n${'x'.repeat(200_000)}`);
    expect(await dropTornLastLine(path)).toBe(200_000);
    await writeFile(path, 'no newline at all');
    await dropTornLastLine(path);
    expect(await readFile(path, 'utf8')).toBe('');
  });

  it('appends after the last whole line, each write out to the OS once flushed() resolves', async () => {
    const dir = await tempDir('append');
    const path = join(dir, 'out.ndjson');
    await writeFile(path, '{"a":1}\n{"b":');
    const sink = await ndjsonAppendSink<{ c: number }>(path);
    sink.write({ c: 3 });
    await sink.flushed();
    expect(await readFile(path, 'utf8')).toBe('{"a":1}\n{"c":3}\n');
    await sink.close();
  });
});
