// Crash test of `replay --state`: kills the real CLI with SIGKILL at random points, resumes it
// each time, and checks the union of its outputs and its final state against an uninterrupted
// run. Needs the built dist/ (npm run build). As a script (npm run crash-test):
//   node scripts/crash-test.mjs [--events 100000] [--keys 1000] [--kills 10] [--seed 1] [--model FILE] [--keep]
// Prints one JSON line of figures; exits 1 when anything was lost, double-stepped or differs.
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'bin', 'cellstream.js');
export const DEFAULT_MODEL = join(
  root,
  'test',
  'golden',
  'fixtures',
  'onnx-torch-lstm2-batchfirst-softmax',
  'model.onnx',
);

/** A deterministic pseudo-random sequence in [0, 1). */
function random(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    // xorshift32
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

/** `events` lines over `keys` keys with skewed frequencies; every fifth event carries an id. */
function eventLines(events, keys, inputSize, seed) {
  const rnd = random(seed);
  const lines = [];
  for (let i = 0; i < events; i++) {
    const key = `key-${Math.floor(rnd() ** 1.5 * keys)}`;
    const features = Array.from({ length: inputSize }, () => Math.round((rnd() * 4 - 2) * 1000) / 1000);
    const event = { key, ts: 1_732_700_000_000 + i * 1000, features };
    if (i % 5 === 0) event.id = `e${i}`;
    lines.push(JSON.stringify(event));
  }
  return lines;
}

function runCli(args) {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => {
    stderr += c;
  });
  const done = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, stderr }));
  });
  return { child, done };
}

async function size(path) {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function readPredictions(path) {
  const out = [];
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of lines) if (line.trim() !== '') out.push(JSON.parse(line));
  return out;
}

async function readStates(path) {
  const { LmdbStore } = await import(pathToFileURL(join(root, 'dist', 'state', 'lmdbStore.js')).href);
  const store = await LmdbStore.open({ path });
  const out = new Map();
  for await (const [key, record] of store.entries()) out.set(key, record);
  await store.close();
  return out;
}

function sameBytes(a, b) {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/**
 * Runs the crash test and resolves with its figures. `log` receives progress lines.
 * Kill points: a fifth of the runs are killed at a random time in start-up, the others once the
 * output has grown by a random share of what is left; a run that finishes before its kill counts
 * as a resume, not a kill, and the loop goes on until `kills` kills.
 */
export async function runCrashTest({
  events = 20_000,
  keys = 300,
  kills = 10,
  seed = 1,
  model = DEFAULT_MODEL,
  batch = 128,
  keep = false,
  log = () => {},
} = {}) {
  const started = performance.now();
  const dir = await mkdtemp(join(tmpdir(), 'cellstream-crash-'));
  try {
    const { loadModel } = await import(pathToFileURL(join(root, 'dist', 'formats', 'load.js')).href);
    const inputSize = (await loadModel(model)).inputs[0].size;
    const input = join(dir, 'events.ndjson');
    const lines = eventLines(events, keys, inputSize, seed);
    await writeFile(input, `${lines.join('\n')}\n`);
    const perKey = new Map();
    for (const line of lines) {
      const { key } = JSON.parse(line);
      perKey.set(key, (perKey.get(key) ?? 0) + 1);
    }
    const common = [
      'replay',
      '--model',
      model,
      '--input',
      input,
      '--batch',
      String(batch),
      '--source-name',
      'events',
    ];

    // The uninterrupted run, timed to place the kills.
    const t0 = performance.now();
    const reference = await runCli([
      ...common,
      '--state',
      join(dir, 'ref-state'),
      '--output',
      join(dir, 'ref.ndjson'),
    ]).done;
    const referenceMs = performance.now() - t0;
    if (reference.code !== 0) throw new Error(`the uninterrupted run failed: ${reference.stderr}`);
    const startupMs = 600;
    log(`uninterrupted run: ${Math.round(referenceMs)} ms`);

    const rnd = random(seed * 7919);
    const crashState = join(dir, 'crash-state');
    const crashOut = join(dir, 'crash.ndjson');
    const totalBytes = (await stat(join(dir, 'ref.ndjson'))).size;
    let killed = 0;
    let runs = 0;
    let finishedEarly = 0;
    while (killed < kills) {
      runs++;
      // Every other run holds a third of the keys in memory, so the cached store is crashed too.
      const cap = runs % 2 === 0 ? ['--max-keys-in-memory', String(Math.max(1, Math.floor(keys / 3)))] : [];
      const before = await size(crashOut);
      // One kill in five lands in start-up (before or while the state opens); the others when the
      // output has grown by a random share of what is left, so they spread over the whole input.
      const inStartup = rnd() < 0.2;
      const target = before + (rnd() * Math.max(0, totalBytes - before)) / (kills - killed);
      const run = runCli([...common, '--state', crashState, '--output', crashOut, ...cap]);
      const t = performance.now();
      const killAt = inStartup ? rnd() * startupMs : Number.POSITIVE_INFINITY;
      const poll = setInterval(async () => {
        if (performance.now() - t >= killAt || (await size(crashOut)) >= target) run.child.kill('SIGKILL');
      }, 3);
      const result = await run.done;
      clearInterval(poll);
      const where = `${Math.round((100 * before) / totalBytes)}% -> ${Math.round((100 * (await size(crashOut))) / totalBytes)}% of the output`;
      if (result.signal === 'SIGKILL') {
        killed++;
        log(
          `run ${runs}: killed ${inStartup ? 'in start-up' : 'mid-stream'} after ${Math.round(performance.now() - t)} ms (${where})${cap.length ? ', cached store' : ''}`,
        );
      } else if (result.code === 0) {
        finishedEarly++;
        log(`run ${runs}: finished before its kill (${where})`);
        if (before >= totalBytes)
          throw new Error('all events applied before enough kills: use more events or fewer kills');
      } else {
        throw new Error(`run ${runs} failed (exit ${result.code}): ${result.stderr}`);
      }
    }
    runs++;
    const last = await runCli([...common, '--state', crashState, '--output', crashOut]).done;
    if (last.code !== 0) throw new Error(`the final resume failed: ${last.stderr}`);
    log(`final resume: ${last.stderr.trim()}`);

    // Outputs: every reference prediction must be there, and every line must equal its reference.
    const expected = new Map();
    for (const p of await readPredictions(join(dir, 'ref.ndjson')))
      expected.set(`${p.key}\u0000${p.seq}`, JSON.stringify(p));
    const seen = new Set();
    let repeated = 0;
    let doubleStepped = 0;
    let lines_ = 0;
    for (const { redelivered, ...p } of await readPredictions(crashOut)) {
      lines_++;
      const id = `${p.key}\u0000${p.seq}`;
      // A prediction that is not the reference's for its key and seq means a step applied twice
      // (seq shifted, state advanced) or a wrong state. A repeat of an already applied event is
      // marked redelivered and otherwise identical; its original must have been written before it.
      if (expected.get(id) !== JSON.stringify(p)) doubleStepped++;
      if (redelivered === true && !seen.has(id)) doubleStepped++;
      if (seen.has(id)) repeated++;
      seen.add(id);
    }
    let lost = 0;
    for (const id of expected.keys()) if (!seen.has(id)) lost++;
    let seqMismatch = 0;
    for (const [key, n] of perKey)
      for (let s = 1; s <= n; s++) if (!expected.has(`${key}\u0000${s}`)) seqMismatch++;

    const [want, got] = await Promise.all([readStates(join(dir, 'ref-state')), readStates(crashState)]);
    let stateDiffers = want.size === got.size ? 0 : Math.abs(want.size - got.size);
    for (const [key, r] of want) {
      const g = got.get(key);
      if (
        !g ||
        !sameBytes(g.state, r.state) ||
        g.seq !== r.seq ||
        JSON.stringify(g.lastApplied) !== JSON.stringify(r.lastApplied)
      ) {
        stateDiffers++;
      }
    }
    return {
      events,
      keys: perKey.size,
      kills: killed,
      resumes: runs - 1,
      runsFinishedBeforeKill: finishedEarly,
      seconds: Math.round((performance.now() - started) / 100) / 10,
      uninterruptedSeconds: Math.round(referenceMs / 100) / 10,
      outputLines: lines_,
      repeatedPredictions: repeated,
      lost,
      doubleStepped,
      referenceSeqGaps: seqMismatch,
      finalStateEqual: stateDiffers === 0,
      keysWithDifferentState: stateDiffers,
      ...(keep ? { dir } : {}),
    };
  } finally {
    if (!keep) await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      events: { type: 'string', default: '100000' },
      keys: { type: 'string', default: '1000' },
      kills: { type: 'string', default: '10' },
      seed: { type: 'string', default: '1' },
      batch: { type: 'string', default: '128' },
      model: { type: 'string' },
      keep: { type: 'boolean', default: false },
    },
  });
  const figures = await runCrashTest({
    events: Number(values.events),
    keys: Number(values.keys),
    kills: Number(values.kills),
    seed: Number(values.seed),
    batch: Number(values.batch),
    ...(values.model ? { model: values.model } : {}),
    keep: values.keep,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${JSON.stringify(figures)}\n`);
  const ok =
    figures.lost === 0 &&
    figures.doubleStepped === 0 &&
    figures.finalStateEqual &&
    figures.referenceSeqGaps === 0;
  process.exitCode = ok ? 0 : 1;
}
