// docker-compose.yml is valid as Compose reads it (Debian's `docker-compose config`, no engine
// needed) and keeps what a single-node KRaft broker needs once the image's defaults are dropped.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('docker-compose.yml', () => {
  it('passes docker-compose config and sets up KRaft with single-node replication', () => {
    // Throws (fails the test) when docker-compose is not installed: CI must install it.
    execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], {
      cwd: root,
      stdio: 'pipe',
    });
    const config = execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config'], {
      cwd: root,
      encoding: 'utf8',
    });
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
    // Scalable: no fixed container name or host port on the service.
    const service = config.slice(config.indexOf('  cellstream:'), config.indexOf('  kafka:'));
    expect(service).not.toMatch(/container_name|ports:/);
  });
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
