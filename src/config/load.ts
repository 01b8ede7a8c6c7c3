import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { envLayer, setPath } from './env.js';
import { type Config, configSchema } from './schema.js';

/** Where a configuration comes from; later layers override earlier ones key by key. */
export interface ConfigSources {
  /** A YAML (or JSON) file; `CELLSTREAM_CONFIG` names one when this is absent. */
  readonly file?: string | undefined;
  /** Environment variables, see `ENV_VARIABLES`. Default: none (pass `process.env` to read them). */
  readonly env?: NodeJS.ProcessEnv;
  /** Command-line flags, as dotted config paths (`'server.port'`) to values. */
  readonly flags?: Readonly<Record<string, unknown>>;
}

/**
 * Builds the `serve` configuration: built-in defaults, then the file, then the environment, then
 * flags. Throws `ConfigError` (`CONFIG_INVALID`) naming every bad key, where its value came from
 * and what is allowed.
 */
export async function loadConfig(sources: ConfigSources = {}): Promise<Config> {
  const layers: Array<{ values: Record<string, unknown>; source: (path: string) => string }> = [];
  const file = sources.file ?? nonEmpty(sources.env?.['CELLSTREAM_CONFIG']);
  if (file !== undefined) {
    const values = await readConfigFile(file);
    layers.push({ values, source: () => file });
  }
  if (sources.env) {
    const env = envLayer(sources.env);
    layers.push({ values: env.values, source: (path) => env.sources.get(path) ?? 'the environment' });
  }
  if (sources.flags) {
    const values: Record<string, unknown> = {};
    const names = new Map<string, string>();
    for (const [path, value] of Object.entries(sources.flags)) {
      if (value === undefined) continue;
      setPath(values, path, value);
      names.set(path, `flag for ${path}`);
    }
    layers.push({ values, source: (path) => names.get(path) ?? 'a flag' });
  }
  return parseConfig(layers);
}

/** Validates one configuration object (already merged); see `loadConfig`. */
export function parseConfig(
  layers: ReadonlyArray<{ values: Record<string, unknown>; source: (path: string) => string }>,
): Config {
  let merged: Record<string, unknown> = {};
  const provenance = new Map<string, string>();
  for (const layer of layers) {
    merged = mergeInto(merged, layer.values, '', (path) => provenance.set(path, layer.source(path)));
  }
  const result = configSchema.safeParse(merged);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => describeIssue(issue, provenance));
  throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
}

async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the config file '${file}' (${(err as NodeJS.ErrnoException).code})`);
  }
  let values: unknown;
  try {
    values = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid YAML: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (values === null || values === undefined) return {};
  if (typeof values !== 'object' || Array.isArray(values)) {
    throw new ConfigError(`${file}: expected a mapping of settings at the top level`);
  }
  return values as Record<string, unknown>;
}

/** Deep-merges plain objects (arrays and scalars replace), reporting each leaf path written. */
function mergeInto(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
  prefix: string,
  wrote: (path: string) => void,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (isPlainObject(value) && (isPlainObject(out[key]) || out[key] === undefined)) {
      out[key] = mergeInto((out[key] ?? {}) as Record<string, unknown>, value, path, wrote);
    } else {
      out[key] = value;
      wrote(path);
    }
  }
  return out;
}

function describeIssue(issue: z.core.$ZodIssue, provenance: Map<string, string>): string {
  const path = issue.path.map(String).join('.');
  const where = path === '' ? '(top level)' : path;
  const from = sourceOf(path, provenance);
  const at = from ? `${where} (from ${from})` : where;
  if (issue.code === 'unrecognized_keys') {
    const allowed = allowedKeys(issue.path.map(String));
    return `${at}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}; allowed: ${allowed.join(', ')}`;
  }
  return `${at}: ${issue.message}`;
}

/** The source of `path` or of the nearest enclosing key that was set as a whole. */
function sourceOf(path: string, provenance: Map<string, string>): string | undefined {
  for (let p = path; p !== ''; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    const s = provenance.get(p);
    if (s !== undefined) return s;
  }
  // An unknown key below an object: name the source of any key set inside it.
  for (const [p, s] of provenance) if (path === '' || p.startsWith(`${path}.`)) return s;
  return undefined;
}

/** The keys the schema allows in the object at `path`. */
function allowedKeys(path: readonly string[]): string[] {
  let schema = unwrap(configSchema as unknown as SchemaNode);
  for (const part of path) {
    const def = schema.def;
    if (def.type === 'array' && def.element) schema = unwrap(def.element);
    else if (def.type === 'object' && def.shape?.[part]) schema = unwrap(def.shape[part]);
    else return [];
  }
  return schema.def.type === 'object' && schema.def.shape ? Object.keys(schema.def.shape) : [];
}

interface SchemaNode {
  readonly def: {
    readonly type: string;
    readonly innerType?: SchemaNode;
    readonly element?: SchemaNode;
    readonly shape?: Record<string, SchemaNode>;
  };
}

function unwrap(schema: SchemaNode): SchemaNode {
  let s = schema;
  while (s.def.innerType) s = s.def.innerType;
  return s;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s;
}
