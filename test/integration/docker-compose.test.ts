// docker-compose.yml is valid as Compose reads it (Debian's `docker-compose config`, no engine
// needed) and keeps what a single-node KRaft broker needs once the image's defaults are dropped.
import { execFileSync } from 'node:child_process';
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
