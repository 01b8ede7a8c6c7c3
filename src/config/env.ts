import { ConfigError } from '../errors.js';

type Parse = (value: string, name: string) => unknown;

const text: Parse = (v) => v;
const integer: Parse = (v, name) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n))
    throw new ConfigError(`${name}: expected an integer, got '${v}'`);
  return n;
};
const boolean: Parse = (v, name) => {
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ConfigError(`${name}: expected true or false (or 1/0, yes/no, on/off), got '${v}'`);
};
const list: Parse = (v) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
const json: Parse = (v, name) => {
  try {
    return JSON.parse(v);
  } catch (err) {
    throw new ConfigError(`${name}: expected JSON, ${err instanceof Error ? err.message : String(err)}`);
  }
};

/**
 * The environment variables `serve` reads, each overriding one configuration key (listed in
 * docs/configuration.md). Only these are read: a typo in a variable name is not silently taken
 * for a setting. `CELLSTREAM_CONFIG` (the file) is read by the loader itself.
 */
export const ENV_VARIABLES: ReadonlyArray<{ name: string; path: string; parse: Parse }> = [
  { name: 'CELLSTREAM_MODEL', path: 'model.path', parse: text },
  { name: 'CELLSTREAM_MODEL_LABEL', path: 'model.label', parse: text },
  { name: 'CELLSTREAM_SHADOW', path: 'model.shadow', parse: text },
  { name: 'CELLSTREAM_ON_MODEL_MISMATCH', path: 'model.onMismatch', parse: text },
  { name: 'CELLSTREAM_STATE', path: 'state.path', parse: text },
  { name: 'CELLSTREAM_STATE_STORE', path: 'state.store', parse: text },
  { name: 'CELLSTREAM_HOST', path: 'server.host', parse: text },
  { name: 'CELLSTREAM_PORT', path: 'server.port', parse: integer },
  { name: 'CELLSTREAM_ALLOW_INSECURE', path: 'server.allowInsecure', parse: boolean },
  { name: 'CELLSTREAM_ALLOWED_ORIGINS', path: 'server.allowedOrigins', parse: list },
  { name: 'CELLSTREAM_ALLOWED_HOSTS', path: 'server.allowedHosts', parse: list },
  { name: 'CELLSTREAM_MAX_PAYLOAD', path: 'sources.websocket.maxPayload', parse: integer },
  { name: 'CELLSTREAM_DEMO_FEED', path: 'sources.demo.enabled', parse: boolean },
  { name: 'CELLSTREAM_TOKENS', path: 'auth.tokens', parse: json },
  { name: 'CELLSTREAM_LOG_LEVEL', path: 'log.level', parse: text },
  // Setting any of these configures the `kafka` section (which then needs brokers, topics and group).
  { name: 'CELLSTREAM_KAFKA_BROKERS', path: 'kafka.brokers', parse: list },
  { name: 'CELLSTREAM_KAFKA_INPUT_TOPIC', path: 'kafka.inputTopic', parse: text },
  { name: 'CELLSTREAM_KAFKA_OUTPUT_TOPIC', path: 'kafka.outputTopic', parse: text },
  { name: 'CELLSTREAM_KAFKA_DEAD_LETTER_TOPIC', path: 'kafka.deadLetterTopic', parse: text },
  { name: 'CELLSTREAM_KAFKA_CHANGELOG_TOPIC', path: 'kafka.changelogTopic', parse: text },
  { name: 'CELLSTREAM_KAFKA_GROUP_ID', path: 'kafka.groupId', parse: text },
  { name: 'CELLSTREAM_KAFKA_EXACTLY_ONCE', path: 'kafka.exactlyOnce', parse: boolean },
  { name: 'CELLSTREAM_KAFKA_MAX_BATCH', path: 'kafka.maxBatch', parse: integer },
  { name: 'CELLSTREAM_KAFKA_COMMIT_INTERVAL_MS', path: 'kafka.commitIntervalMs', parse: integer },
  { name: 'CELLSTREAM_KAFKA_MAX_CACHED_KEYS', path: 'kafka.maxCachedKeys', parse: integer },
  { name: 'CELLSTREAM_KAFKA_CLIENT', path: 'kafka.client', parse: text },
  { name: 'CELLSTREAM_KAFKA_WORKERS', path: 'kafka.workers', parse: integer },
  { name: 'CELLSTREAM_KAFKA_STANDBYS', path: 'kafka.standbys', parse: integer },
];

/** The configuration layer the environment gives, and which variable set each key. */
export function envLayer(env: NodeJS.ProcessEnv): {
  values: Record<string, unknown>;
  sources: Map<string, string>;
} {
  const values: Record<string, unknown> = {};
  const sources = new Map<string, string>();
  for (const { name, path, parse } of ENV_VARIABLES) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    setPath(values, path, parse(raw, name));
    sources.set(path, name);
  }
  return { values, sources };
}

/** Sets `obj.a.b.c = value` for path `a.b.c`, creating the objects on the way. */
export function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let at = obj;
  for (const part of parts.slice(0, -1)) {
    const next = at[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) at[part] = {};
    at = at[part] as Record<string, unknown>;
  }
  at[parts[parts.length - 1]] = value;
}
