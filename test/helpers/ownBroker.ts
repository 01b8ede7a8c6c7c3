// A Kafka broker of a test's own, on its own port and data directory, that the test may kill,
// restart on its data, or pause, without disturbing the shared broker other test files use.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './build.js';

const run = promisify(execFile);
const START = join(ROOT, 'scripts', 'kafka', 'start.sh');
const STOP = join(ROOT, 'scripts', 'kafka', 'stop.sh');

/** Whether nothing listens on 127.0.0.1:`port`. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/**
 * The first free pair (broker, controller) from the shared broker's port + 100 upwards (or
 * `KAFKA_FAULT_PORT`), so that the test's broker never answers for somebody else's.
 */
async function choosePort(): Promise<number> {
  const base = Number(process.env.KAFKA_FAULT_PORT ?? Number(process.env.KAFKA_PORT ?? 19092) + 100);
  for (let port = base; port < base + 40; port += 2) {
    if ((await portFree(port)) && (await portFree(port + 1))) return port;
  }
  throw new Error(`no two free ports from ${base} for a test broker (set KAFKA_FAULT_PORT)`);
}

export class OwnBroker {
  private constructor(
    readonly port: number,
    readonly dataDir: string,
  ) {}

  /** `127.0.0.1:port`. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  private env(keepData: boolean): NodeJS.ProcessEnv {
    return {
      ...process.env,
      KAFKA_PORT: String(this.port),
      KAFKA_CONTROLLER_PORT: String(this.port + 1),
      KAFKA_DATA_DIR: this.dataDir,
      KAFKA_KEEP_DATA: keepData ? '1' : '0',
      KAFKA_START_TIMEOUT: '150',
      // After a SIGKILL the restarted broker cannot register until its old registration expires
      // (9 s by default): shorter, so that the tests spend their time on the client's recovery.
      KAFKA_EXTRA_CONFIG: 'broker.session.timeout.ms=2000\nbroker.heartbeat.interval.ms=500',
    };
  }

  /** Starts a fresh broker on a free port, in a temporary data directory; waits until it answers. */
  static async start(): Promise<OwnBroker> {
    const port = await choosePort();
    const broker = new OwnBroker(port, await mkdtemp(join(tmpdir(), 'cellstream-broker-')));
    await broker.launch(false);
    return broker;
  }

  private async launch(keepData: boolean): Promise<void> {
    await run('bash', [START], { env: this.env(keepData), maxBuffer: 1 << 24 });
    // start.sh does nothing when a broker already answers: make sure this one is ours.
    await this.pid();
  }

  /** The broker's process id (from the pid file start.sh writes). */
  async pid(): Promise<number> {
    const pid = Number((await readFile(join(this.dataDir, 'broker.pid'), 'utf8')).trim());
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no broker pid in ${this.dataDir}`);
    return pid;
  }

  /** SIGKILL: the broker vanishes mid-request, as on a machine's loss; waits until it is gone. */
  async kill(): Promise<void> {
    const pid = await this.pid();
    process.kill(pid, 'SIGKILL');
    while (alive(pid)) await new Promise((r) => setTimeout(r, 50));
  }

  /**
   * Starts the broker again on its data (what it had committed survives); waits until it answers.
   * Resolves with the moment (performance.now()) its port first accepted a connection.
   */
  async restart(): Promise<number> {
    let listening: number | undefined;
    let done = false;
    const watch = (async () => {
      while (!done && listening === undefined) {
        if (await portOpen(this.port)) listening = performance.now();
        else await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      await this.launch(true);
    } finally {
      done = true;
      await watch;
    }
    return listening ?? performance.now();
  }

  /** SIGSTOP: the broker stops answering but keeps its connections, like a network partition. */
  async pause(): Promise<void> {
    process.kill(await this.pid(), 'SIGSTOP');
  }

  async resume(): Promise<void> {
    process.kill(await this.pid(), 'SIGCONT');
  }

  /** Stops the broker (resuming it first if paused) and deletes its data. */
  async stop(): Promise<void> {
    try {
      await this.resume();
    } catch {}
    await run('bash', [STOP], { env: this.env(true) }).catch(() => {});
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
