// docker-compose.yml is valid as Compose reads it (Debian's `docker-compose config`, no engine
// needed), keeps what a single-node KRaft broker needs once the image's defaults are dropped, and
// the commands its services run work: run here against the local test broker.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ensureBuilt } from '../helpers/build.js';
import { tempDir } from '../helpers/fixtures.js';
import { brokers, requireBroker, topicsFor } from '../helpers/kafka.js';
import { serveBin } from '../helpers/serve.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Runs `tool`; a missing tool fails saying how to get it (not a bare spawn ENOENT). */
function run(tool: string, args: string[], install: string): string {
  try {
    return execFileSync(tool, args, { cwd: root, encoding: 'utf8', stdio: 'pipe' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`${tool} is not installed: run \`npm run setup\` (or \`${install}\`) and try again`);
    }
    throw err;
  }
}

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
}

/** docker-compose.yml as Compose itself reads it (`docker-compose config`, no engine needed). */
function composeConfig(): { text: string; services: Record<string, ComposeService> } {
  const compose = (args: string[]) =>
    run('docker-compose', ['-f', 'docker-compose.yml', ...args], 'apt-get install -y docker-compose');
  compose(['config', '-q']);
  const text = compose(['config']);
  return { text, services: (parse(text) as { services: Record<string, ComposeService> }).services };
}

describe('docker-compose.yml', () => {
  it('passes docker-compose config and sets up KRaft with single-node replication', () => {
    const { text: config } = composeConfig();
    expect(config).toMatch(/image: apache\/kafka:3\.9\.\d+/);
    for (const setting of [
      'KAFKA_NODE_ID',
      'KAFKA_PROCESS_ROLES: broker,controller',
      'KAFKA_CONTROLLER_QUORUM_VOTERS',
      'KAFKA_LISTENERS',
      'KAFKA_CONTROLLER_LISTENER_NAMES',
      'KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: 1',
      'KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: 1',
      'KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: 1',
    ]) {
      expect(config).toContain(setting);
    }
  });

  it('a missing tool fails saying how to get it, not with a bare ENOENT', () => {
    expect(() => run('cellstream-no-such-tool', ['--help'], 'apt-get install -y no-such-tool')).toThrow(
      'cellstream-no-such-tool is not installed: run `npm run setup` (or `apt-get install -y no-such-tool`) and try again',
    );
  });

  it('runs a topic-creation step, then cellstream serve in Kafka mode on a published port, and a producer', () => {
    const { services } = composeConfig();
    const init = services['kafka-init']!;
    expect(init.command?.slice(0, 1)).toEqual(['/opt/kafka/bin/kafka-topics.sh']);
    expect(init.command).toEqual(expect.arrayContaining(['--create', '--topic', 'events', '--partitions']));
    const cellstream = services['cellstream']!;
    expect(cellstream.command?.[0]).toBe('serve');
    expect(cellstream.depends_on?.['kafka-init']?.condition).toBe('service_completed_successfully');
    expect(services['demo-producer']!.depends_on?.['kafka-init']?.condition).toBe(
      'service_completed_successfully',
    );
    // Published on the host's loopback only, as a range, so --scale still gives each instance a port.
    expect(cellstream.ports).toEqual([expect.stringMatching(/^127\.0\.0\.1:8080-\d+:8080(\/tcp)?$/)]);
    expect(JSON.stringify(cellstream)).not.toMatch(/container_name/);
    // The schema registry: the Apicurio version the tests run (scripts/registry), on the host's loopback.
    const registry = services['registry']!;
    expect(registry.image).toBe('apicurio/apicurio-registry:3.0.9');
    expect(registry.ports).toEqual([expect.stringMatching(/^127\.0\.0\.1:28081:8080(\/tcp)?$/)]);
  });
});

/** The status of a GET sent with the given Host header (fetch does not let a caller set Host). */
function statusWithHost(url: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

// The commands docker-compose.yml runs, run here against the local test broker (no container
// engine): the same arguments, with the broker address, names and port swapped for this test's.
describe('the commands docker-compose.yml runs', () => {
  it('create the topic, produce demo events, and serve consumes them with /healthz, /metrics and the dashboard', async () => {
    await requireBroker();
    const { services } = composeConfig();
    const t = topicsFor('compose');
    const swap = (args: string[]) =>
      args.map((a) =>
        a === 'kafka:9092'
          ? brokers.join(',')
          : a === 'events'
            ? t.inputTopic
            : a === 'predictions'
              ? t.outputTopic
              : a === 'cellstream'
                ? t.groupId
                : a,
      );

    // kafka-init: the image's kafka-topics.sh is Kafka's TopicCommand, as scripts/kafka/topics.sh runs it.
    const init = services['kafka-init']!.command!;
    const afterBootstrap = init.slice(init.indexOf('--bootstrap-server') + 2);
    const topics = join(root, 'scripts', 'kafka', 'topics.sh');
    const env = { ...process.env, KAFKA_BROKERS: brokers.join(',') };
    execFileSync(topics, swap(afterBootstrap), { cwd: root, env, stdio: 'pipe' });
    const described = execFileSync(topics, ['--describe', '--topic', t.inputTopic], {
      env,
      encoding: 'utf8',
    });
    const partitions = Number(init[init.indexOf('--partitions') + 1]);
    expect(described).toContain(`PartitionCount: ${partitions}`);

    // cellstream: the service's command and environment, on a free port and a fresh state directory.
    const service = services['cellstream']!;
    const args = swap(service.command!.slice(1));
    args[args.indexOf('--port') + 1] = '0';
    args[args.indexOf('--state') + 1] = join(await tempDir('compose'), 'state');
    ensureBuilt();
    const server = await serveBin(args, service.environment ?? {});
    // As a browser on the Docker host reaches it: a published loopback port other than the
    // container's own (scaled instances get 8081, 8082), so the Host check must allow that.
    const url = server.url.replace('0.0.0.0', 'localhost');
    try {
      // demo-producer: its entrypoint and command, told to stop after 40 events.
      const producer = services['demo-producer']!;
      const [node, script] = producer.entrypoint!;
      expect(node).toBe('node');
      const sent = spawnSync(
        process.execPath,
        [script!, ...swap(producer.command!), '--rate', '200', '--count', '40'],
        {
          cwd: root,
          encoding: 'utf8',
        },
      );
      expect(sent.status, sent.stderr).toBe(0);
      expect(sent.stdout.trim()).toBe(`sent 40 events to ${t.inputTopic}`);
      // No Node process warning on either major (on Node 24 kafkajs's negative timer would print one).
      expect(sent.stderr).not.toMatch(/\(node:\d+\)/);

      let consumed = 0;
      for (let i = 0; i < 600 && consumed < 40; i++) {
        const metrics = await (await fetch(`${url}/metrics`)).text();
        consumed = Number(/^cellstream_events_in_total\{source="kafka"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
        if (consumed < 40) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(consumed).toBe(40);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).not.toMatch(/^cellstream_rejects_total\{/m);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      // A scaled instance's dashboard, published on the host's 8082: its Host is answered too.
      expect(await statusWithHost(`${url}/v1/stats`, 'localhost:8082')).toBe(200);
      expect(await statusWithHost(`${url}/v1/stats`, 'evil.example:8082')).toBe(403);
      const dashboard = await fetch(`${url}/`);
      expect(dashboard.status).toBe(200);
      expect(await dashboard.text()).toContain('<html');
      // The demo model's decoded prediction of a customer the producer sent.
      const key = (await (await fetch(`${url}/v1/keys/customer-16`)).json()) as {
        prediction: { next_interval_days: number };
      };
      expect(key.prediction.next_interval_days).toBeGreaterThan(0);
    } finally {
      server.child.kill('SIGTERM');
      await new Promise((resolve) => server.child.once('exit', resolve));
    }
  }, 180_000);
});

// No container engine runs here, so the image is not built in CI; this keeps the Dockerfile
// honest about what the image needs, the gaps an engine-less CI would otherwise miss.
describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const [buildStage, runStage] = dockerfile.split(/^FROM .*$/m).slice(1);

  it("ships every path of package.json's files in the final image, as the npm package does", () => {
    const { files } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files: string[] };
    const copied = [...runStage.matchAll(/^COPY (?:--from=\w+ )?(?:\/app\/)?(\S+) /gm)].map((m) => m[1]);
    for (const path of files) expect(copied, `the image needs ${path}`).toContain(path);
  });

  it('builds with the npm build script, from every input that script reads', () => {
    expect(buildStage).toMatch(/^RUN npm run build\b/m);
    const copied = [...buildStage.matchAll(/^COPY (.+) \S+$/gm)].flatMap((m) => m[1].split(' '));
    const { scripts } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    // Each file or folder the build script names (tsconfig, scripts/…) must be in the build stage.
    for (const input of scripts.build.match(/[\w.-]+\.json|scripts\/[\w.-]+/g) ?? []) {
      const top = input.split('/')[0];
      expect(copied, `the build reads ${input}`).toContain(top);
    }
    expect(copied).toContain('src');
    // The native kernel's source (scripts/build-native.mjs) and a compiler to build it with.
    expect(copied).toContain('native');
    expect(buildStage).toMatch(/apt-get install .*\bgcc\b/);
  });

  it('ships the native kernel the build stage compiled', () => {
    expect(runStage).toMatch(/^COPY --from=build \/app\/build\/native \.\/build\/native$/m);
  });
});
