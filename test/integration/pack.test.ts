// The package as a user installs it: `npm pack`, the tarball installed into a fresh project (from
// npm's cache where it can), a strict TypeScript consumer type-checked against the shipped .d.ts
// files, the README's library example and the bin run from the install, and the native kernel
// built by the package's install script (and an install without a compiler still succeeding).
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../helpers/build.js';
import { tempDir } from '../helpers/fixtures.js';

const run = promisify(execFile);
const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

let project: string;
let installed: string;
let installOutput: string;
beforeAll(async () => {
  ensureBuilt();
  const dir = await tempDir('pack');
  // --ignore-scripts: dist/ is built already (ensureBuilt); `prepare` would rebuild it under
  // the feet of the other test files running the bin.
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT });
  const tarball = join(dir, stdout.trim().split('\n').at(-1)!);
  project = join(dir, 'consumer');
  await mkdir(project);
  await writeFile(
    join(project, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', type: 'module', private: true }),
  );
  // As the README says: cellstream, and rxjs for the consumer's own Observables.
  const install = await run(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, 'rxjs'],
    { cwd: project, maxBuffer: 16 << 20 },
  );
  installOutput = install.stdout + install.stderr;
  installed = join(project, 'node_modules', 'cellstream');
}, 300_000);

describe('cellstream installed from its packed tarball', () => {
  it('builds the native kernel on install (the install script)', async () => {
    expect(await exists(join(installed, 'native', 'kernel.c'))).toBe(true);
    expect(await exists(join(installed, 'build', 'native', 'cellstream-native.node'))).toBe(true);
    // npm lists the install script it ran; docs/dependencies.md explains that warning.
    expect(installOutput).toMatch(/cellstream@[\d.]+ \(install: node scripts\/build-native\.mjs/);
  });

  it('type-checks a strict TypeScript consumer against the shipped types, library checks on', async () => {
    for (const file of ['consumer.ts', 'tsconfig.json']) {
      await copyFile(join(ROOT, 'test', 'fixtures', 'consumer', file), join(project, file));
    }
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(process.execPath, [tsc, '-p', project], { cwd: project }).then(
      () => 'ok',
      (err: { stdout: string }) => err.stdout,
    );
    expect(result).toBe('ok');
  }, 120_000);

  it("runs the README's library example from the install, and the bin", async () => {
    await copyFile(join(ROOT, 'examples', 'library.mjs'), join(project, 'library.mjs'));
    const demo = join(installed, 'demo');
    const { stdout } = await run(
      process.execPath,
      ['library.mjs', join(demo, 'visits.cellstream.json'), join(demo, 'visits.ndjson')],
      { cwd: project, maxBuffer: 16 << 20 },
    );
    const lines = stdout.trimEnd().split('\n');
    const events = (await readFile(join(demo, 'visits.ndjson'), 'utf8')).split('\n').filter((l) => l.trim());
    expect(lines.at(-1)).toBe(`${events.length} predictions, 0 rejected`);
    expect(lines[0]).toMatch(/^customer-\d+ #1: \d+\.\d+$/);

    const bin = join(project, 'node_modules', '.bin', 'cellstream');
    expect((await run(bin, ['--version'], { cwd: project })).stdout).toBe(`${version}\n`);
  }, 120_000);

  it('an install without a C compiler succeeds, says so in one line, and the kernel says how to fix it', async () => {
    const addon = join(installed, 'build', 'native', 'cellstream-native.node');
    await rm(addon);
    const rebuilt = await run('npm', ['rebuild', 'cellstream', '--foreground-scripts'], {
      cwd: project,
      env: { ...process.env, CC: join(project, 'no-such-cc') },
    });
    expect(rebuilt.stdout + rebuilt.stderr).toMatch(
      /cellstream: native kernel not built \(no C compiler: '.*no-such-cc' not found; install gcc\); the wasm kernel will be used/,
    );
    expect(await exists(addon)).toBe(false);
    const probe = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import { selectKernel } from 'cellstream'; try { selectKernel({ kernel: 'native' }) } catch (e) { console.log(e.code, e.message) }",
      ],
      { cwd: project },
    );
    expect(probe.stdout).toMatch(/^KERNEL_UNAVAILABLE .*install gcc, then run npm rebuild cellstream/);

    // serve says so at start, not silently slower.
    const serve = spawn(
      join(project, 'node_modules', '.bin', 'cellstream'),
      ['serve', '--port', '0', '--state', join(project, 'state')],
      { cwd: project, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const lines: Array<{ msg?: string; reason?: string; url?: string }> = [];
    let buffered = '';
    await new Promise<void>((resolve, reject) => {
      serve.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const complete = buffered.split('\n');
        buffered = complete.pop()!;
        for (const line of complete) {
          lines.push(JSON.parse(line));
          if (lines.at(-1)!.url) resolve();
        }
      });
      serve.once('exit', (code) => reject(new Error(`serve exited with ${code} before it was ready`)));
    });
    serve.kill('SIGTERM');
    await new Promise((resolve) => serve.once('exit', resolve));
    const warning = lines.find((l) => l.msg === 'native kernel unavailable: stepping on the wasm kernel');
    expect(warning?.reason).toMatch(/install gcc, then run npm rebuild cellstream/);
  }, 120_000);
});
