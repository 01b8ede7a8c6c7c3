import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh temporary directory for one test file's fixtures. */
export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `cellstream-${prefix}-`));
}

/** The events file the replay tests share: two keys, a malformed line, a wrong-size line, a blank line. */
export const REPLAY_LINES = [
  '{"key":"a","ts":1000,"features":[0.1,0.2,0.3]}',
  '{"key":"b","ts":"2024-11-27T10:00:00Z","features":[1,0,-1]}',
  '{"key":"a","ts":3000,',
  '',
  '{"key":"a","ts":4000,"features":[1,2]}',
  '{"key":"a","ts":5000,"features":[0.5,0.5,0.5],"id":"e5"}',
  '{"key":"b","ts":6000,"features":[0,0,0],"reset":true}',
];

export async function writeLines(path: string, lines: readonly string[]): Promise<string> {
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}
