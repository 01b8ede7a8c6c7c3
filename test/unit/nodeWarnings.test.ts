// dropKafkajsNegativeTimerWarning, in a child process of its own (it rewires process-wide
// listeners): kafkajs's negative-timer warning is dropped, any other warning, a
// TimeoutNegativeWarning from other code included, still prints as Node prints it.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../helpers/build.js';

beforeAll(ensureBuilt);

/** Runs `body` as an ESM script with `drop` bound to the function under test (built, in dist/). */
async function stderrOf(body: string): Promise<string> {
  const module = JSON.stringify(join(ROOT, 'dist', 'kafka', 'nodeWarnings.js'));
  const script = `const { dropKafkajsNegativeTimerWarning: drop } = await import(${module});\n${body}`;
  const { stderr } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
    cwd: ROOT,
  });
  return stderr;
}

/** A warning as Node's timers raise it, with `frame` as the caller of setTimeout. */
const warning = (frame: string) => `
  const w = new Error('-1796618641019 is a negative number.');
  w.name = 'TimeoutNegativeWarning';
  w.stack = 'TimeoutNegativeWarning: ' + w.message + '\\n    at new Timeout (node:internal/timers:195:17)\\n    at setTimeout (node:timers:120:19)\\n    at ' + ${JSON.stringify(frame)};
  process.emitWarning(w);`;

const KAFKAJS =
  'RequestQueue.scheduleCheckPendingRequests (/app/node_modules/kafkajs/src/network/requestQueue/index.js:317:37)';
const OTHER = 'retry (/app/dist/sources/kafkaSource.js:10:5)';

describe('dropKafkajsNegativeTimerWarning', () => {
  it("drops the negative-timer warning raised from kafkajs's request queue", async () => {
    expect(await stderrOf(`drop();${warning(KAFKAJS)}`)).toBe('');
  });

  it('still prints the same warning from any other code, and other kinds of warning', async () => {
    const stderr = await stderrOf(
      `drop(); drop();${warning(OTHER)}\nprocess.emitWarning('something else', 'CellstreamKernelWarning');`,
    );
    expect(stderr.match(/TimeoutNegativeWarning: -1796618641019 is a negative number\./g)).toHaveLength(1);
    expect(stderr.match(/CellstreamKernelWarning: something else/g)).toHaveLength(1);
  });

  it('without it, Node prints the kafkajs warning (what the function exists to drop)', async () => {
    expect(await stderrOf(warning(KAFKAJS))).toContain('TimeoutNegativeWarning: -1796618641019');
  });
});
