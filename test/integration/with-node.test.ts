// scripts/with-node.sh, which CI and `npm run test:node24` run the suite on Node 24 with: it
// refuses what is not a version, names what the registry has when a major is missing, falls back
// to its cache when the registry is unreachable, and puts the Node it picked first on PATH. And
// this suite runs on the Node it was started for (so a PATH slip cannot pass a Node 20 run off as
// a Node 24 one) and on one that package.json's engines allows.
import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/build.js';
import { tempDir } from '../helpers/fixtures.js';

const script = join(ROOT, 'scripts', 'with-node.sh');
/** Port 1 on loopback refuses at once: an npm registry that cannot be reached. */
const UNREACHABLE = 'http://127.0.0.1:1/';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function withNode(args: string[], env: Record<string, string> = {}): Promise<Result> {
  try {
    const { stdout, stderr } = await promisify(execFile)('bash', [script, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

let dir: string;
beforeAll(async () => {
  dir = await tempDir('with-node');
});

describe('scripts/with-node.sh', () => {
  it('refuses what is not a Node.js version, saying what it wants', async () => {
    const r = await withNode(['lts', 'true'], { CELLSTREAM_NODE_CACHE: join(dir, 'unused') });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("'lts' is not a Node.js version: give a major such as 24");
  });

  it('names the package and the majors the registry has when asked for one it lacks', async () => {
    const r = await withNode(['99', 'true'], { CELLSTREAM_NODE_CACHE: join(dir, 'unused') });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`no Node.js 99 for ${process.platform}-${process.arch}`);
    expect(r.stderr).toContain(`(package node-${process.platform}-${process.arch})`);
    expect(r.stderr).toMatch(/majors there from 20 on: 20, .*\b24\b/);
  });

  it('says it cannot reach the registry when nothing is cached', async () => {
    const r = await withNode(['24', 'true'], {
      CELLSTREAM_NODE_CACHE: join(dir, 'empty'),
      npm_config_registry: UNREACHABLE,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot reach ${UNREACHABLE} to fetch Node.js 24`);
    expect(r.stderr).toContain('ECONNREFUSED');
  });

  it('without the registry, runs the command on the newest cached release of the major, first on PATH', async () => {
    // Stand-ins for cached releases: each `node` says which it is, as the real one would.
    const cache = join(dir, 'cache');
    for (const v of ['24.2.0', '24.10.1', '25.0.0']) {
      await mkdir(join(cache, v, 'bin'), { recursive: true });
      await writeFile(join(cache, v, 'bin', 'node'), `#!/bin/sh\necho v${v}\n`);
      await chmod(join(cache, v, 'bin', 'node'), 0o755);
    }
    const r = await withNode(['24', 'sh', '-c', 'node; echo "$CELLSTREAM_NODE_VERSION"'], {
      CELLSTREAM_NODE_CACHE: cache,
      npm_config_registry: UNREACHABLE,
    });
    expect(r.stderr).toContain(`${UNREACHABLE} not reachable; using the cached Node.js 24.10.1`);
    expect(r.stdout).toBe('v24.10.1\n24.10.1\n');
    expect(r.code).toBe(0);
  });
});

describe('the Node this suite runs on', () => {
  it('is the release with-node.sh picked when it started the suite, and one the engines field allows', async () => {
    const picked = process.env['CELLSTREAM_NODE_VERSION'];
    if (picked) expect(process.version).toBe(`v${picked}`);
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      engines: { node: string };
    };
    const min = /^>=(\d+)\.(\d+)$/.exec(pkg.engines.node);
    expect(min, pkg.engines.node).not.toBeNull();
    const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
    expect(major > Number(min![1]) || (major === Number(min![1]) && minor >= Number(min![2]))).toBe(true);
  });
});
