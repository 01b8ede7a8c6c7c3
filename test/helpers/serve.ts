import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import WebSocket from 'ws';
import { parseConfig } from '../../src/config/load.js';
import { saveCellstreamModel } from '../../src/formats/cellstream/index.js';
import type { Model } from '../../src/model/types.js';
import { createLogger } from '../../src/server/logger.js';
import { type RunningServer, startServer } from '../../src/server/serve.js';
import { ROOT } from './build.js';
import { tempDir } from './fixtures.js';
import { tinyLstm } from './models.js';

/** Writes `model` (default: tinyLstm) as a cellstream model file in a fresh directory. */
export async function modelFile(model: Model = tinyLstm()): Promise<string> {
  const dir = await tempDir('serve-model');
  const path = join(dir, 'model.cellstream.json');
  await saveCellstreamModel(model, path);
  return path;
}

/**
 * Starts a server on 127.0.0.1 port 0 with an in-memory store (unless `config` says otherwise),
 * silent logs, and the given config on top. `config` is a partial configuration object.
 */
export async function startTestServer(
  config: Record<string, unknown>,
  env: NodeJS.ProcessEnv = {},
): Promise<RunningServer & { ws: (path: string) => string }> {
  const base = {
    server: { port: 0, host: '127.0.0.1' },
    state: { store: 'memory' },
    engine: { maxDelayMs: 1 },
    log: { level: 'silent' },
  };
  const parsed = parseConfig([
    { values: base, source: () => 'test defaults' },
    { values: config, source: () => 'test' },
  ]);
  const server = await startServer(parsed, { logger: createLogger('silent'), env });
  return Object.assign(server, { ws: (path: string) => `${server.url.replace('http', 'ws')}${path}` });
}

/** Opens a WebSocket and waits for the handshake; rejects with the HTTP status of a refused upgrade. */
export function connect(url: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode }));
    });
    ws.once('error', reject);
  });
}

/** The HTTP status of a refused upgrade, or 101 if the socket opened (it is then closed). */
export async function upgradeStatus(url: string, options: WebSocket.ClientOptions = {}): Promise<number> {
  try {
    const ws = await connect(url, options);
    ws.close();
    return 101;
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status === undefined) throw err;
    return status;
  }
}

/** Collects the next `n` messages of `ws`, parsed as JSON. */
export function nextMessages(ws: WebSocket, n: number): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const got: Array<Record<string, unknown>> = [];
    if (n === 0) resolve(got);
    const onMessage = (data: WebSocket.RawData) => {
      got.push(JSON.parse(data.toString()));
      if (got.length === n) {
        ws.off('message', onMessage);
        ws.off('close', onClose);
        resolve(got);
      }
    };
    const onClose = (code: number, reason: Buffer) => {
      ws.off('message', onMessage);
      reject(new Error(`socket closed (${code} ${reason}) after ${got.length} of ${n} messages`));
    };
    ws.on('message', onMessage);
    ws.once('close', onClose);
  });
}

/** Resolves with the close code and reason of `ws`. */
export async function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) throw new Error('already closed');
  const [code, reason] = (await once(ws, 'close')) as [number, Buffer];
  return { code, reason: reason.toString() };
}

/** Sends `events` on `ws` (as one array frame) and resolves with their answers, in order. */
export async function exchange(ws: WebSocket, events: unknown[]): Promise<Array<Record<string, unknown>>> {
  const answers = nextMessages(ws, events.length);
  ws.send(JSON.stringify(events));
  return answers;
}

/**
 * Starts the real bin's `serve` with `args` as a child process (dist/: call ensureBuilt first),
 * `env` on top of this process's; resolves with the process, its URL from the startup log line,
 * the stdout log lines, which keep coming in as it runs, and its stderr so far.
 */
export async function serveBin(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ child: ChildProcess; url: string; logs: string[]; stderr: () => string }> {
  const child = spawn('node', [join(ROOT, 'bin', 'cellstream.js'), 'serve', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const logs: string[] = [];
  let buffered = '';
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        logs.push(line);
        const entry = JSON.parse(line);
        if (entry.url) resolve(entry.url);
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code} before listening: ${stderr}`)));
  });
  return { child, url, logs, stderr: () => stderr };
}
