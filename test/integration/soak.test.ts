// The soak run, short: scripts/soak.mjs against the real bin for 20 s with one kill -9 and
// restart; `npm run soak -- --minutes N` runs it long.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../helpers/build.js';

beforeAll(ensureBuilt);

describe('soak (short)', () => {
  it('mixed, hostile and never-reading traffic with a kill -9: nothing answered is lost, nothing stepped twice, every frame answered', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>(
      (resolve) => {
        execFile(
          process.execPath,
          [join(ROOT, 'scripts', 'soak.mjs'), '--seconds', '20', '--kills', '1'],
          { cwd: ROOT, timeout: 240_000 },
          (err, out, errOut) =>
            resolve({ code: err ? Number(err.code ?? 1) : 0, stdout: out, stderr: errOut }),
        );
      },
    );
    expect(stderr).toBe('');
    const summary = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(summary).toMatchObject({
      starts: 2,
      lost: 0,
      doubled: 0,
      unanswered: 0,
      outOfOrder: 0,
      unexpectedAnswers: 0,
      hostileUnanswered: 0,
      serveExit: 0,
    });
    expect(summary.answered).toBe(summary.eventsSent);
    expect(summary.eventsSent).toBeGreaterThan(0);
    expect(summary.hostileAnswered).toBeGreaterThan(0);
    expect(summary.subscriberPredictions).toBeGreaterThan(0);
    expect(code).toBe(0);
  }, 300_000);
});
