import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { recordInputSchema, recordOutputSchema, registrySchema } from './config.js';
import type { RecordFormatOptions } from './formats.js';

/** The `--formats` file of `cellstream kafka`: `serve`'s `kafka.registry`, `kafka.input` and `kafka.output`. */
const formatsFileSchema = z
  .strictObject({
    registry: registrySchema.optional(),
    input: recordInputSchema.prefault({}),
    output: recordOutputSchema.prefault({}),
  })
  .superRefine((f, ctx) => {
    for (const side of ['input', 'output'] as const) {
      if (f[side].format !== 'json' && f.registry === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['registry'],
          message: `${side}.format ${f[side].format} needs the schema registry: set registry.url`,
        });
      }
    }
  });

/** Reads and checks a formats file (YAML or JSON); `ConfigError` names every bad key. */
export async function loadFormatsFile(file: string): Promise<RecordFormatOptions> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the formats file '${file}' (${(err as NodeJS.ErrnoException).code})`);
  }
  let value: unknown;
  try {
    value = parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid YAML: ${(err as Error).message}`);
  }
  const result = formatsFileSchema.safeParse(value ?? {});
  if (!result.success) {
    const lines = result.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new ConfigError(`invalid formats file ${file}:\n  ${lines.join('\n  ')}`);
  }
  return result.data;
}
