import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../helpers/build.js';
import { tempDir } from '../helpers/fixtures.js';
import { modelFile } from '../helpers/serve.js';

beforeAll(ensureBuilt);

/** Starts the real bin with `args`; collects stdout lines as they come. */
function bin(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { child: ChildProcess; lines: string[]; stderr: () => string } {
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'cellstream.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buffered = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => {
    buffered += c.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  return { child, lines, stderr: () => stderr };
}

describe('serve: signals from the first moment', () => {
  it('a SIGTERM while serve is still starting (model not loaded, not listening) stops it cleanly with exit 0', async () => {
    const { child, lines, stderr } = bin([
      'serve',
      '--model',
      await modelFile(),
      '--port',
      '0',
      '--state',
      join(await tempDir('serve-signals'), 'state'),
    ]);
    // Its first line says it is starting; the signal goes out the moment it appears.
    await new Promise<void>((resolve, reject) => {
      const check = () => (lines.length > 0 ? resolve() : setTimeout(check, 1));
      check();
      child.once('exit', () => reject(new Error(`exited before starting: ${stderr()}`)));
    });
    child.kill('SIGTERM');
    const [code, signal] = await once(child, 'exit');
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    const messages = lines.map((l) => JSON.parse(l).msg as string);
    expect(messages[0]).toMatch(/^starting/);
    expect(messages).toContainEqual(expect.stringMatching(/received signal/));
    expect(messages.at(-1)).toMatch(/^shut down/);
  });

  it('exits after shutting down even when something left a handle open, and says what was open', async () => {
    // A timer that a (misbehaving) library would leave behind, started before the CLI loads.
    // (NODE_OPTIONS splits on spaces, so the module has none.)
    const leak = 'data:text/javascript,setInterval(()=>{},60000)';
    const { child, lines, stderr } = bin(
      [
        'serve',
        '--model',
        await modelFile(),
        '--port',
        '0',
        '--state',
        join(await tempDir('serve-leak'), 'state'),
      ],
      { NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import=${leak}` },
    );
    await new Promise<void>((resolve, reject) => {
      const check = () => (lines.some((l) => JSON.parse(l).url) ? resolve() : setTimeout(check, 10));
      check();
      child.once('exit', () => reject(new Error(`exited before listening: ${stderr()}`)));
    });
    child.kill('SIGTERM');
    const [code, signal] = await once(child, 'exit');
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(JSON.parse(lines.at(-1)!).msg).toMatch(/^shut down/);
    const exit = stderr()
      .split('\n')
      .filter((l) => l.startsWith('{"event":"exit"'))
      .map((l) => JSON.parse(l));
    expect(exit).toHaveLength(1);
    expect(exit[0].message).toMatch(/still running 5000 ms after shutting down; exiting \(open: .*Timeout/);
  }, 60_000);
});
