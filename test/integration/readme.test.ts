// The README's examples, run as printed: its shell commands (the few that need a running server
// or are the suite itself are handled apart, and an unknown command fails this test so a new
// one gets checked too), the WebSocket client against a real `serve`, the library snippet, and
// the printed events and answers against what the code really does.
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../helpers/build.js';
import { tempDir } from '../helpers/fixtures.js';
import { serveBin } from '../helpers/serve.js';

const run = promisify(execFile);
const readme = await readFile(join(ROOT, 'README.md'), 'utf8');

/** The README's fenced blocks of one language, in order. */
function blocks(lang: string): string[] {
  return [...readme.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].filter((m) => m[1] === lang).map((m) => m[2]!);
}
const commands = blocks('sh').flatMap((b) => b.trimEnd().split('\n'));
const json = blocks('json').map((b) => b.trim());
/** The JSON block that starts with `prefix`. */
const jsonBlock = (prefix: string) => {
  const found = json.find((b) => b.startsWith(prefix));
  if (!found) throw new Error(`README has no json block starting ${prefix}`);
  return found;
};

/** Runs a printed command line in the repository root (no shell: the README prints none). */
async function runPrinted(line: string) {
  const [tool, ...args] = line.split(/\s+/);
  expect(tool).toBe('node');
  return run(process.execPath, args, { cwd: ROOT, maxBuffer: 32 << 20 });
}

let server: Awaited<ReturnType<typeof serveBin>> | undefined;
beforeAll(() => ensureBuilt());
afterAll(async () => {
  if (server) {
    server.child.kill('SIGTERM');
    await new Promise((resolve) => server!.child.once('exit', resolve));
  }
});

describe("the README's examples, as printed", () => {
  it('prints only commands this test knows how to check', () => {
    const known = [
      /^npm run setup && npm start$/,
      /^npm test$/,
      /^node examples\/ws-client\.mjs$/,
      /^node bin\/cellstream\.js replay --model \S+ --input \S+$/,
    ];
    for (const line of commands)
      expect(
        known.some((k) => k.test(line)),
        line,
      ).toBe(true);
    expect(commands).toContain('npm run setup && npm start');
    expect(commands).toContain('npm test');
  });

  it('the quick start sets up with the same script .ci/run uses, and its apt line lists what that script installs', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts['setup']).toBe('bash scripts/setup.sh');
    expect(pkg.scripts['start']).toMatch(/bin\/cellstream\.js serve --demo-feed$/);
    expect(await readFile(join(ROOT, '.ci', 'run'), 'utf8')).toMatch(/^scripts\/setup\.sh$/m);
    const setup = await readFile(join(ROOT, 'scripts', 'setup.sh'), 'utf8');
    const installed = [...setup.matchAll(/need\+=\(([^)]+)\)/g)].flatMap((m) => m[1]!.split(' ')).sort();
    const aptLine = /apt-get install -y --no-install-recommends ([^`]+)`/.exec(readme.replace(/\s+/g, ' '));
    expect(aptLine?.[1]?.trim().split(' ').sort()).toEqual(installed);
  });

  it('the replay commands run and print one prediction per demo event', async () => {
    const replays = commands.filter((c) => c.startsWith('node bin/cellstream.js replay'));
    expect(replays.length).toBeGreaterThan(0);
    const events = (await readFile(join(ROOT, 'demo', 'visits.ndjson'), 'utf8'))
      .split('\n')
      .filter((l) => l.trim());
    for (const line of new Set(replays)) {
      const { stdout, stderr } = await runPrinted(line);
      const predictions = stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(predictions).toHaveLength(events.length);
      expect(stderr).toBe(`replayed ${events.length} events: ${events.length} predictions, 0 rejected\n`);
      expect(typeof predictions[0].label).toBe('string');
    }
  });

  it('the WebSocket client sends the printed event to a running serve and prints the printed answer', async () => {
    // `npm start` is `serve --demo-feed` on port 8080; here on a free port, with fresh state, and
    // without the feed so the answer is the printed event's alone.
    const state = join(await tempDir('readme'), 'state');
    server = await serveBin(['--port', '0', '--state', state]);
    const line = commands.find((c) => c.startsWith('node examples/ws-client.mjs'))!;
    const { stdout } = await runPrinted(`${line} ${server.url.replace('http', 'ws')}/ingest`);
    const answer = JSON.parse(stdout);

    // The event the README prints is the one the client sends.
    const event = JSON.parse(jsonBlock('{"key": "customer-42", "ts": "2026'));
    const client = await readFile(join(ROOT, 'examples', 'ws-client.mjs'), 'utf8');
    expect(client).toContain(
      `const event = { key: '${event.key}', ts: '${event.ts}', values: { spend: ${event.values.spend}, channel: '${event.values.channel}' } };`,
    );
    // The answer as printed, up to the digits the README elides with "…".
    const printed = jsonBlock('{"key":"customer-42","ts":1767607200000,"seq":1');
    const shown = JSON.parse(printed.replace(/(\d)…/g, '$1'));
    expect(Object.keys(answer)).toEqual(Object.keys(shown));
    expect(answer).toMatchObject({ key: shown.key, ts: Date.parse(event.ts), seq: 1, model: shown.model });
    expect(String(answer.output[0])).toMatch(new RegExp(`^${String(shown.output[0]).replace('.', '\\.')}`));
    expect(String(answer.next_interval_days)).toMatch(
      new RegExp(`^${String(shown.next_interval_days).replace('.', '\\.')}`),
    );
  }, 60_000);

  it("the features event fits the model it names, and the prediction example decodes as the demo's spec does", async () => {
    const event = jsonBlock('{"key": "sensor-7"');
    const model = /`(test\/golden\/fixtures\/[^`]+\.onnx)`/.exec(readme)?.[1];
    expect(model).toBeDefined();
    const child = execFile(
      process.execPath,
      ['bin/cellstream.js', 'replay', '--model', model!, '--input', '-'],
      {
        cwd: ROOT,
      },
    );
    const out: string[] = [];
    child.stdout!.on('data', (c) => out.push(String(c)));
    child.stdin!.end(`${event}\n`);
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(JSON.parse(out.join(''))).toMatchObject({ key: 'sensor-7', seq: 1 });

    const prediction = JSON.parse(jsonBlock('{"key": "customer-42", "ts": 1767607200000'));
    const spec = JSON.parse(await readFile(join(ROOT, 'demo', 'visits.spec.json'), 'utf8'));
    const { min, max } = spec.output.inverse.minmax;
    expect(Object.keys(prediction)).toContain(spec.output.name);
    expect(prediction[spec.output.name]).toBeCloseTo(min + prediction.output[0] * (max - min), 1);
  });

  it('the library snippet runs as printed, one outcome per demo event, and examples/library.mjs too', async () => {
    const [snippet] = blocks('js');
    // Inside the checkout (tmp/ is ignored by git), so `import 'cellstream'` finds this package.
    const dir = join(ROOT, 'tmp');
    await mkdir(dir, { recursive: true });
    const file = join(dir, `readme-library-${process.pid}.mjs`);
    await writeFile(file, snippet!);
    try {
      const { stdout } = await run(process.execPath, [file], { cwd: ROOT, maxBuffer: 32 << 20 });
      const lines = stdout.trimEnd().split('\n');
      const events = (await readFile(join(ROOT, 'demo', 'visits.ndjson'), 'utf8'))
        .split('\n')
        .filter((l) => l.trim());
      expect(lines).toHaveLength(events.length);
      for (const l of lines) expect(l).toMatch(/^prediction \d+\.\d+$/);
    } finally {
      await rm(file, { force: true });
    }
    expect(readme).toContain('`node\nexamples/library.mjs`');
    const { stdout } = await runPrinted('node examples/library.mjs');
    expect(stdout.trimEnd().split('\n').at(-1)).toMatch(/^\d+ predictions, 0 rejected$/);
  });
});
