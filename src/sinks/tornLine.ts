import { open } from 'node:fs/promises';

const CHUNK = 64 * 1024;

/**
 * Truncates the file at `path` after its last newline, so that it ends with a whole line (or is
 * empty). A missing file is left missing. Returns the bytes cut off.
 */
export async function dropTornLastLine(path: string): Promise<number> {
  let file: Awaited<ReturnType<typeof open>>;
  try {
    file = await open(path, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  try {
    const size = (await file.stat()).size;
    let end = size;
    const buf = Buffer.alloc(CHUNK);
    // Read backwards until a newline turns up; usually the first chunk has one.
    while (end > 0) {
      const start = Math.max(0, end - CHUNK);
      const { bytesRead } = await file.read(buf, 0, end - start, start);
      const at = buf.subarray(0, bytesRead).lastIndexOf(0x0a);
      if (at >= 0) {
        end = start + at + 1;
        break;
      }
      end = start;
    }
    if (end < size) {
      await file.truncate(end);
      await file.sync();
    }
    return size - end;
  } finally {
    await file.close();
  }
}
