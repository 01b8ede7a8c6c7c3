import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { saveCellstreamModel } from '../../src/formats/cellstream/index.js';
import { modelFingerprint } from '../../src/model/index.js';
import { ensureBuilt, ROOT } from '../helpers/build.js';
import { capture, parseNdjson, readNdjson, runBin, runMain } from '../helpers/cli.js';
import { REPLAY_LINES, tempDir, writeLines } from '../helpers/fixtures.js';
import { brokers, createInputTopic, requireBroker } from '../helpers/kafka.js';
import { tinyLstm } from '../helpers/models.js';

const BIN = join(ROOT, 'bin', 'cellstream.js');
let dir: string;
let model: string;
let events: string;
beforeAll(async () => {
  ensureBuilt();
  dir = await tempDir('cli');
  model = join(dir, 'tiny.cellstream.json');
  await saveCellstreamModel(tinyLstm(), model);
  events = await writeLines(join(dir, 'events.ndjson'), REPLAY_LINES);
});

describe('cellstream replay (child process)', () => {
  it('predicts, reports rejected lines by number, dead-letters them and exits 2', async () => {
    const deadLetter = join(dir, 'dead.ndjson');
    const run = await runBin(['replay', '--model', model, '--input', events, '--dead-letter', deadLetter]);

    expect(run.code).toBe(2);
    const predictions = parseNdjson(run.stdout);
    expect(predictions.map((p) => [p.key, p.ts, p.seq, p.model, p.output.length])).toEqual([
      ['a', 1000, 1, 'tiny@1', 2],
      ['b', Date.UTC(2024, 10, 27, 10), 1, 'tiny@1', 2],
      ['a', 5000, 2, 'tiny@1', 2],
      ['b', 6000, 1, 'tiny@1', 2],
    ]);
    const stderr = run.stderr.trimEnd().split('\n');
    expect(stderr).toHaveLength(3);
    expect(stderr[0]).toMatch(/^line 3: malformed JSON: /);
    expect(stderr[1]).toBe('line 5: features has 2 values, the model takes 3');
    expect(stderr[2]).toBe('replayed 6 events: 4 predictions, 2 rejected');

    const dead = await readNdjson(deadLetter);
    expect(dead).toEqual([
      {
        line: 3,
        code: 'EVENT_MALFORMED_JSON',
        reason: stderr[0].slice('line 3: '.length),
        raw: REPLAY_LINES[2],
      },
      {
        line: 5,
        code: 'EVENT_WRONG_SIZE',
        reason: 'features has 2 values, the model takes 3',
        raw: REPLAY_LINES[4],
      },
    ]);
  });

  it('exits 0 and writes --output when every line applies, whatever --batch', async () => {
    const clean = await writeLines(
      join(dir, 'clean.ndjson'),
      REPLAY_LINES.filter((_, i) => i !== 2 && i !== 4),
    );
    const outputs: string[] = [];
    for (const batch of ['1', '2', '256']) {
      const output = join(dir, `out-${batch}.ndjson`);
      const run = await runBin([
        'replay',
        '--model',
        model,
        '--input',
        clean,
        '--output',
        output,
        '--batch',
        batch,
      ]);
      expect(run).toEqual({ code: 0, stdout: '', stderr: 'replayed 4 events: 4 predictions, 0 rejected\n' });
      outputs.push(await readFile(output, 'utf8'));
    }
    expect(outputs[0].trimEnd().split('\n')).toHaveLength(4);
    expect(new Set(outputs).size).toBe(1);
  });

  it('exits 1 with the typed error message, and a stack trace only with CELLSTREAM_DEBUG=1', async () => {
    const missing = join(dir, 'missing.cellstream.json');
    const run = await runBin(['replay', '--model', missing, '--input', events]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`cellstream: model file '${missing}' does not exist\n`);

    const debug = await runBin(['replay', '--model', missing, '--input', events], {
      CELLSTREAM_DEBUG: '1',
    });
    expect(debug.code).toBe(1);
    expect(debug.stderr).toMatch(/^cellstream: model file .* does not exist\nModelFormatError: .*\n\s+at /);
  });
});

describe('cellstream replay | head (child process)', () => {
  it('stops quietly with exit 0 when the reader closes stdout, and --state resumes the rest', async () => {
    const many = join(dir, 'many.ndjson');
    const lines = Array.from({ length: 50_000 }, (_, i) =>
      JSON.stringify({ key: `k${i % 100}`, ts: 1000 + i, features: [0.1, 0.2, 0.3] }),
    );
    await writeLines(many, lines);
    const state = join(dir, 'head-state');
    // A real shell pipeline, as a user types it; the status is cellstream's, not head's.
    const headed = await new Promise<{ code: number | null; stderr: string; first: string }>((resolve) => {
      execFile(
        'bash',
        [
          '-c',
          // biome-ignore lint/suspicious/noTemplateCurlyInString: bash's PIPESTATUS, not a template
          '"$0" "$1" replay --model "$2" --input "$3" --state "$4" | head -n 1; exit "${PIPESTATUS[0]}"',
          process.execPath,
          BIN,
          model,
          many,
          state,
        ],
        { env: { ...process.env, CELLSTREAM_DEBUG: '' } },
        (err, stdout, stderr) =>
          resolve({
            code: err ? (typeof err.code === 'number' ? err.code : null) : 0,
            stderr,
            first: stdout,
          }),
      );
    });

    expect(parseNdjson(headed.first)).toHaveLength(1);
    expect(headed.stderr).not.toMatch(/EPIPE/);
    expect(headed.stderr).toMatch(/^replayed \d+ events: .*; stopped: stdout was closed by its reader\n$/);
    expect(headed.code).toBe(0);

    // Whatever the pipe swallowed was never acknowledged, so the resumed run steps every event
    // the first one did not finish: together, each of the 50 000 events once.
    const first = Number(/^replayed (\d+) events/.exec(headed.stderr)?.[1]);
    expect(first).toBeLessThan(50_000);
    const rest = await runBin([
      'replay',
      '--model',
      model,
      '--input',
      many,
      '--state',
      state,
      '--output',
      join(dir, 'rest.ndjson'),
    ]);
    expect(rest.code).toBe(0);
    const resumed = await readNdjson(join(dir, 'rest.ndjson'));
    const lastSeq = new Map<string, number>();
    for (const p of resumed) lastSeq.set(p.key, p.seq);
    // Each key ends at its 500th event, having been stepped once per event across both runs.
    expect(lastSeq.size).toBe(100);
    expect([...lastSeq.values()].every((seq) => seq === 500)).toBe(true);
  });
});

describe('cellstream inspect (child process)', () => {
  it("prints the model's description and fingerprint", async () => {
    const run = await runBin(['inspect', '--model', model]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('tiny@1');
    expect(run.stdout).toContain(modelFingerprint(tinyLstm()));
    expect(run.stdout).toContain('x[3]');
  });
});

describe('main (in process)', () => {
  it('reports a missing events file as a usage error, exit 1', async () => {
    const run = await runMain(['replay', '--model', model, '--input', join(dir, 'nope.ndjson')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^cellstream: cannot read the events file '.*nope\.ndjson' \(ENOENT\)\n$/);
  });

  it('leaves unknown commands and bad options to commander, exit 1', async () => {
    const unknown = await runMain(['frobnicate']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);

    const batch = await runMain(['replay', '--model', model, '--input', events, '--batch', '0']);
    expect(batch.code).toBe(1);
    expect(batch.stderr).toMatch(/--batch <n>.*expected a positive integer/);

    const missing = await runMain(['replay', '--input', events]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/required option '--model <file>' not specified/);
  });

  it('serve: a bad Kafka flag stops the real bin before anything starts, naming the key, exit 1', async () => {
    const run = await runBin([
      'serve',
      '--port',
      '0',
      '--kafka-brokers',
      'nohost',
      '--input-topic',
      'events',
      '--output-topic',
      'predictions',
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/kafka\.brokers\.0 \(from flag for kafka\.brokers\): a broker is host:port/);
    expect(run.stderr).toMatch(/kafka\.groupId: required/);
  });

  it('kafka: --standbys other than 0 or 1 is a usage error naming what it takes', async () => {
    const run = await runMain([
      'kafka',
      '--model',
      join(ROOT, 'test/golden/fixtures/onnx-torch-lstm1-seqfirst/model.onnx'),
      '--kafka-brokers',
      '127.0.0.1:1',
      '--input-topic',
      'events',
      '--output-topic',
      'predictions',
      '--group-id',
      'scoring',
      '--state',
      join(dir, 'standbys-refused'),
      '--standbys',
      '2',
    ]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/--standbys.*expected 0 or 1/);
  });

  it('documents the exit codes in --help, exit 0', async () => {
    const run = await runMain(['replay', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('2  replay or warm ran to the end, but some lines were rejected');
  });

  it('warm: reports a missing archive as a usage error, exit 1, and documents its options', async () => {
    const run = await runMain([
      'warm',
      '--model',
      model,
      '--input',
      join(dir, 'nope.ndjson'),
      '--state',
      join(dir, 'warm-nope'),
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /^cellstream: cannot read the archive '.*nope\.ndjson' \(ENOENT\): give --input/,
    );
    const directory = await runMain([
      'warm',
      '--model',
      model,
      '--input',
      dir,
      '--state',
      join(dir, 'warm-dir'),
    ]);
    expect(directory.code).toBe(1);
    expect(directory.stderr).toMatch(/^cellstream: the archive '.*' is not a file: give --input/);
    const help = await runMain(['warm', '--help']);
    expect(help.code).toBe(0);
    for (const flag of ['--model', '--input', '--state', '--dead-letter', '--batch', '--max-staged-keys']) {
      expect(help.stdout).toContain(flag);
    }
    expect((await runMain(['--help'])).stdout).toMatch(/warm \[options\]/);
  });
});

describe('cellstream warm (the bin, then in process)', () => {
  it('warms the state replay then continues from, dead-letters bad lines, exits 2, says how fast', async () => {
    const state = join(dir, 'warm-state');
    const run = await runBin(['warm', '--model', model, '--input', events, '--state', state]);
    expect(run.code).toBe(2);
    const stderr = run.stderr.trimEnd().split('\n');
    expect(stderr).toHaveLength(3);
    expect(stderr[0]).toMatch(/^line 3: malformed JSON: /);
    expect(stderr[1]).toBe('line 5: features has 2 values, the model takes 3');
    expect(stderr[2]).toMatch(
      /^warmed 2 keys from 6 events: 4 stepped, 2 rejected; \d+\.\d+ s, \d+ events\/s replayed$/,
    );
    const dead = await readNdjson(join(state, 'warm-dead-letter.ndjson'));
    expect(dead.map((d) => [d.line, d.code, d.raw])).toEqual([
      [3, 'EVENT_MALFORMED_JSON', REPLAY_LINES[2]],
      [5, 'EVENT_WRONG_SIZE', REPLAY_LINES[4]],
    ]);

    // Run again over the same archive: nothing is stepped twice. Line 5 (key a) lies before a's
    // last applied line now, so it counts as applied, as replay --state counts it; line 3 has no key.
    const again = await runMain(['warm', '--model', model, '--input', events, '--state', state]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(
      /warmed 0 keys from 6 events: 0 stepped, 1 rejected, 5 already applied and skipped;/,
    );

    // The next event after the archive, served from the warmed state, is predicted as a replay
    // of the whole history and that event predicts it.
    const next = '{"key":"a","ts":7000,"features":[0.3,-0.2,0.9]}';
    const after = await writeLines(join(dir, 'warm-next.ndjson'), [next]);
    const served = await runMain(['replay', '--model', model, '--input', after, '--state', state]);
    expect(served.code).toBe(0);
    const whole = await writeLines(join(dir, 'warm-whole.ndjson'), [...REPLAY_LINES, next]);
    const reference = await runMain(['replay', '--model', model, '--input', whole]);
    const [warmed] = parseNdjson(served.stdout);
    const expected = parseNdjson(reference.stdout).at(-1);
    expect(warmed).toEqual(expected);
    expect(warmed.seq).toBe(3);
  });
});

describe('cellstream replay --state (child process)', () => {
  it('resumes from the state directory, and refuses another model’s state naming both fingerprints', async () => {
    const state = join(dir, 'cli-state');
    const output = join(dir, 'cli-state.ndjson');
    const clean = await writeLines(
      join(dir, 'cli-state-events.ndjson'),
      REPLAY_LINES.filter((_, i) => i !== 2 && i !== 4),
    );
    const resume = ['replay', '--model', model, '--input', clean, '--state', state, '--output', output];
    const first = await runBin(resume);
    expect(first).toMatchObject({ code: 0, stderr: 'replayed 4 events: 4 predictions, 0 rejected\n' });
    const again = await runBin(resume);
    expect(again.code).toBe(0);
    expect(again.stderr).toBe(
      'replayed 4 events: 0 predictions, 0 rejected, 4 already applied and skipped (2 of their predictions repeated)\n',
    );
    // The repeats appended to --output are marked as WebSocket answers mark them; the originals are not.
    const written = await readNdjson(output);
    expect(written).toHaveLength(6);
    expect(written.slice(0, 4).some((p) => 'redelivered' in p)).toBe(false);
    for (const repeat of written.slice(4)) {
      expect(repeat.redelivered).toBe(true);
      const { redelivered: _, ...original } = repeat;
      expect(written.slice(0, 4)).toContainEqual(original);
    }

    const otherModel = join(dir, 'other.cellstream.json');
    await saveCellstreamModel(tinyLstm(99), otherModel);
    const refused = await runBin(['replay', '--model', otherModel, '--input', clean, '--state', state]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain(modelFingerprint(tinyLstm()));
    expect(refused.stderr).toContain(modelFingerprint(tinyLstm(99)));
    const reset = await runBin([
      'replay',
      '--model',
      otherModel,
      '--input',
      clean,
      '--state',
      state,
      '--on-model-mismatch',
      'reset',
      '--max-keys-in-memory',
      '1',
      '--ttl',
      '30d',
    ]);
    expect(reset.code).toBe(0);
    expect(reset.stderr).toMatch(/4 predictions, 0 rejected, 2 keys reset\n$/);
  });
});

/** Runs the real bin with `input` on its stdin (a real pipe), as `cat FILE | cellstream …` does. */
function runBinWithStdin(
  args: string[],
  input: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, CELLSTREAM_DEBUG: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe('cellstream --version and help (child process)', () => {
  it("prints the package's version for --version and -V, exit 0", async () => {
    const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const run = await runBin([flag]);
      expect(run).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
    }
    // convert's own --version (the model's version) is untouched.
    const help = await runMain(['convert', '--help']);
    expect(help.stdout).toMatch(/--version <version> +the model's version/);
  });

  it('prints only the help for kafka --help and -h: no lifecycle line, exit 0', async () => {
    for (const flag of ['--help', '-h']) {
      const run = await runBin(['kafka', flag]);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('--input-topic');
      expect(run.stderr).toBe('');
    }
  });

  it('names every model format, Keras included, in each command’s --model help', async () => {
    for (const command of ['replay', 'inspect', 'convert', 'serve', 'kafka']) {
      const run = await runMain([command, '--help']);
      expect(run.code).toBe(0);
      // The help wraps long descriptions; the option's text runs to the next option.
      const flat = run.stdout.replace(/\s+/g, ' ');
      const from = flat.indexOf('--model <file>');
      const line = flat.slice(from, flat.indexOf(' --', from + 1));
      for (const format of ['.onnx', '.keras', '.h5', 'model.json', '.cellstream.json']) {
        expect(line, `${command} --model help`).toContain(format);
      }
    }
  });
});

describe('cellstream replay --input - (stdin)', () => {
  const clean = () => REPLAY_LINES.filter((_, i) => i !== 2 && i !== 4);

  it('reads events from a real pipe and predicts what --input FILE predicts', async () => {
    const fromFile = await runBin(['replay', '--model', model, '--input', events]);
    const fromPipe = await runBinWithStdin(
      ['replay', '--model', model, '--input', '-'],
      `${REPLAY_LINES.join('\n')}\n`,
    );
    expect(fromPipe.code).toBe(2);
    expect(fromPipe.stdout).toBe(fromFile.stdout);
    // Rejected lines are numbered as lines of stdin.
    expect(fromPipe.stderr).toBe(fromFile.stderr);
    expect(parseNdjson(fromPipe.stdout)).toHaveLength(4);
  });

  it('with --state needs --source-name (stdin has no name of its own), then resumes by it', async () => {
    const state = join(dir, 'stdin-state');
    const input = () => Readable.from([`${clean().join('\n')}\n`]);
    const stdout = capture();
    const stderr = capture();
    const args = ['node', 'cellstream', 'replay', '--model', model, '--input', '-', '--state', state];
    const unnamed = await main(args, { stdout: stdout.stream, stderr: stderr.stream, stdin: input() });
    expect(unnamed).toBe(1);
    expect(stderr.text()).toMatch(/^cellstream: --input - with --state needs --source-name NAME/);

    const named = [...args, '--source-name', 'visits-feed'];
    const first = await runMain(named.slice(2), input());
    expect(first).toMatchObject({ code: 0, stderr: 'replayed 4 events: 4 predictions, 0 rejected\n' });
    const again = await runMain(named.slice(2), input());
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(
      /^replayed 4 events: 0 predictions, 0 rejected, 4 already applied and skipped/,
    );
    for (const repeat of parseNdjson(again.stdout)) expect(repeat.redelivered).toBe(true);
  });
});

describe('cellstream kafka --state', () => {
  const base = () => [
    'kafka',
    '--model',
    model,
    '--kafka-brokers',
    brokers.join(','),
    '--input-topic',
    'events',
    '--output-topic',
    'predictions',
    '--group-id',
    'g',
  ];

  it('needs a state directory, and refuses --state and --state-dir naming different ones, exit 1', async () => {
    const none = await runMain(base());
    expect(none.code).toBe(1);
    expect(none.stderr).toBe("cellstream: kafka needs --state <dir>: this instance's LMDB state directory\n");
    const both = await runMain([...base(), '--state', join(dir, 'k1'), '--state-dir', join(dir, 'k2')]);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/--state and --state-dir name different directories/);
    const help = await runMain(['kafka', '--help']);
    expect(help.stdout).toContain('--state <dir>');
    expect(help.stdout).not.toContain('--state-dir');
  });

  it('takes --workers from 1 to 64 only, refused before anything starts, exit 1', async () => {
    for (const bad of ['0', '65', '1.5', 'two']) {
      const run = await runMain([...base(), '--state', join(dir, 'kw'), '--workers', bad]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/--workers <n>.*expected an integer from 1 to 64/);
    }
    const help = await runMain(['kafka', '--help']);
    expect(help.stdout).toMatch(/--workers <n>/);
  });

  it('takes --state, and the deprecated --state-dir with a warning, against a real broker', async () => {
    await requireBroker();
    for (const flag of ['--state', '--state-dir']) {
      const state = join(dir, `kafka-${flag.slice(2)}`);
      const t = await createInputTopic('cli-state', 1);
      const topics = [
        '--input-topic',
        t.inputTopic,
        '--output-topic',
        t.outputTopic,
        '--group-id',
        t.groupId,
      ];
      const child = spawn(process.execPath, [BIN, ...base(), ...topics, flag, state], {
        cwd: ROOT,
        env: { ...process.env, CELLSTREAM_DEBUG: '' },
      });
      let stderr = '';
      child.stderr.on('data', (c) => {
        stderr += c;
      });
      const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
      for (let i = 0; i < 600 && !stderr.includes('"event":"started"'); i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(stderr).toContain('"event":"started"');
      child.kill('SIGTERM');
      expect(await closed).toBe(0);
      expect(stderr).toContain('"event":"stopped"');
      expect(stderr.includes('--state-dir is deprecated')).toBe(flag === '--state-dir');
      // The LMDB directory was created where the flag said.
      await expect(
        readFile(join(state, 'data.mdb')).then(
          () => true,
          () => false,
        ),
      ).resolves.toBe(true);
    }
  }, 120_000);
});
