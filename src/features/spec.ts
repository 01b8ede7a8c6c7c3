import { z } from 'zod';
import { FeatureSpecError } from '../errors.js';

/**
 * The feature spec format (docs/feature-spec.md): how an event's named `values` become the
 * model's input vectors, and how its output reads as a prediction. Objects are strict so that a
 * misspelt key is an error naming it rather than a silently ignored option.
 */

/** sklearn `MinMaxScaler` as fitted: `data_min_`, `data_max_`, `feature_range`, `clip`. */
const MinMax = z
  .strictObject({
    min: z.number(),
    max: z.number(),
    feature_range: z
      .tuple([z.number(), z.number()])
      .refine(([a, b]) => a < b, 'feature_range must be [low, high] with low < high')
      .optional(),
    clip: z.boolean().optional(),
  })
  .refine((m) => m.max >= m.min, { message: 'max must not be below min', path: ['max'] });

/** sklearn `StandardScaler` as fitted: `mean_` and `scale_`. */
const Standard = z.strictObject({ mean: z.number(), std: z.number().nonnegative() });

export const TIME_UNITS = ['days', 'hours', 'minutes', 'seconds', 'ms'] as const;

const Feature = z
  .strictObject({
    /** What the feature is called (in errors and `inspect`); also its `values` field unless `source` says otherwise. */
    name: z.string().min(1),
    source: z.string().min(1).optional(),
    derived: z.literal('time_since_previous').optional(),
    unit: z.enum(TIME_UNITS).optional(),
    first: z.number().optional(),
    minmax: MinMax.optional(),
    standard: Standard.optional(),
    onehot: z
      .array(z.union([z.string(), z.number()]))
      .min(1)
      .refine((c) => new Set(c).size === c.length, 'categories must be distinct')
      .optional(),
    unknown: z.enum(['error', 'ignore']).optional(),
  })
  .superRefine((f, ctx) => {
    const bad = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if (f.derived !== undefined) {
      if (f.source !== undefined) bad('source', 'a derived feature has no source');
      if (f.unit === undefined) bad('unit', `time_since_previous needs a unit (${TIME_UNITS.join(', ')})`);
      if (f.first === undefined)
        bad('first', "time_since_previous needs first, its value on a key's first event");
      if (f.onehot !== undefined) bad('onehot', 'a derived feature is numeric and cannot be one-hot');
    } else {
      if (f.unit !== undefined) bad('unit', 'unit belongs to a derived feature');
      if (f.first !== undefined) bad('first', 'first belongs to a derived feature');
    }
    if (f.minmax !== undefined && f.standard !== undefined)
      bad('standard', 'give one scaling, not minmax and standard');
    if (f.onehot !== undefined && (f.minmax !== undefined || f.standard !== undefined)) {
      bad(f.minmax ? 'minmax' : 'standard', 'a one-hot feature is not scaled');
    }
    if (f.unknown !== undefined && f.onehot === undefined)
      bad('unknown', 'unknown belongs to a one-hot feature');
  });

const Inverse = z
  .strictObject({ minmax: MinMax.optional(), standard: Standard.optional() })
  .refine(
    (s) => (s.minmax === undefined) !== (s.standard === undefined),
    'give exactly one of minmax or standard',
  );

/** Prediction fields a decoded value must not overwrite. */
const RESERVED = ['key', 'ts', 'seq', 'model', 'output', 'label', 'probabilities'];

const Output = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('regression'),
    name: z
      .string()
      .min(1)
      .refine((n) => !RESERVED.includes(n), `name must not be one of ${RESERVED.join(', ')}`)
      .optional(),
    inverse: Inverse.optional(),
  }),
  z.strictObject({
    kind: z.literal('classes'),
    labels: z
      .array(z.string().min(1))
      .min(2)
      .refine((l) => new Set(l).size === l.length, 'labels must be distinct'),
  }),
]);

const Spec = z
  .strictObject({
    /** Per model input (by name), its features in order; their widths add up to the input's size. */
    inputs: z.record(z.string(), z.array(Feature).min(1)),
    output: Output.optional(),
  })
  .superRefine((s, ctx) => {
    for (const [input, features] of Object.entries(s.inputs)) {
      const seen = new Set<string>();
      features.forEach((f, i) => {
        if (seen.has(f.name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['inputs', input, i, 'name'],
            message: `'${f.name}' names two features`,
          });
        }
        seen.add(f.name);
      });
    }
  });

export type MinMaxScaling = z.infer<typeof MinMax>;
export type StandardScaling = z.infer<typeof Standard>;
export type FeatureDef = z.infer<typeof Feature>;
export type OutputSpec = z.infer<typeof Output>;
export type FeatureSpec = z.infer<typeof Spec>;

/**
 * Checks `json` against the spec format and returns it typed. Throws `FeatureSpecError` naming
 * `where` (the file, or the model) and the key path of each problem, e.g. `inputs.visits[0].minmax.max`.
 */
export function parseFeatureSpec(json: unknown, where: string): FeatureSpec {
  const result = Spec.safeParse(json);
  if (result.success) return result.data;
  const problems = result.error.issues.slice(0, 5).map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => `${keyPath([...issue.path, k])}: unknown key`).join('; ');
    }
    return `${keyPath(issue.path) || '(the spec)'}: ${issue.message}`;
  });
  const more = result.error.issues.length > 5 ? ` (and ${result.error.issues.length - 5} more)` : '';
  throw new FeatureSpecError(`feature spec ${where} is invalid: ${problems.join('; ')}${more}`);
}

/** `inputs.visits[0].minmax`: the key path of a spec value as a reader would write it. */
export function keyPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}
