import { InvalidEventError, UnknownCategoryError } from '../errors.js';
import type { Model } from '../model/types.js';
import { featureWidth } from './checkSpec.js';
import type { EncodeContext, ValuesEncoder } from './encodeInputs.js';
import type { FeatureDef, FeatureSpec } from './spec.js';
import { scale, timeSince, writeOneHot } from './transforms.js';

const FLOAT32_MAX = 3.4028234663852886e38;

/** Writes one feature's values into `out` at `at`; throws an `EventError` naming the field. */
type WriteFeature = (
  values: Readonly<Record<string, unknown>>,
  ctx: EncodeContext,
  out: Float32Array,
  at: number,
) => void;

/**
 * The encoder of a spec already checked against `model` (see `checkSpecFitsModel`): one
 * Float32Array per model input, in the model's input order.
 */
export function valuesEncoder(spec: FeatureSpec, model: Model): ValuesEncoder {
  const plans = model.inputs.map((input) => {
    const features = spec.inputs[input.name];
    const writers = features.map(featureWriter);
    const offsets = features.map((_, i) => features.slice(0, i).reduce((n, f) => n + featureWidth(f), 0));
    return { size: input.size, writers, offsets };
  });
  return (values, ctx) =>
    plans.map((plan) => {
      const x = new Float32Array(plan.size);
      plan.writers.forEach((write, i) => {
        write(values, ctx, x, plan.offsets[i]);
      });
      return x;
    });
}

function featureWriter(f: FeatureDef): WriteFeature {
  if (f.derived === 'time_since_previous') {
    const unit = f.unit!;
    const first = f.first!;
    return (_values, ctx, out, at) => {
      if (ctx.previousTs !== undefined && ctx.ts < ctx.previousTs) {
        throw new InvalidEventError(
          `ts ${iso(ctx.ts)} is before the key's previous event (${iso(ctx.previousTs)}), so ${f.name} would be negative; send the key's events in time order, or reset the key`,
        );
      }
      out[at] = finite(scale(timeSince(ctx.ts, ctx.previousTs, unit, first), f), f.name);
    };
  }
  const field = f.source ?? f.name;
  if (f.onehot) {
    const categories = f.onehot;
    const ignore = f.unknown === 'ignore';
    return (values, _ctx, out, at) => {
      const v = present(values, field);
      if (!writeOneHot(v, categories, out, at) && !ignore) {
        throw new UnknownCategoryError(
          `values.${field} is ${JSON.stringify(v)}, not one of ${categories.map((c) => JSON.stringify(c)).join(', ')}`,
        );
      }
    };
  }
  return (values, _ctx, out, at) => {
    const v = present(values, field);
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new InvalidEventError(`values.${field} must be a finite number, got ${describe(v)}`);
    }
    out[at] = finite(scale(v, f), `values.${field}`);
  };
}

function present(values: Readonly<Record<string, unknown>>, field: string): unknown {
  const v = values[field];
  // null counts as absent, as everywhere in the event contract.
  if (v === undefined || v === null) throw new InvalidEventError(`values.${field} is missing`);
  return v;
}

/** A scaled value float32 cannot hold would become ±Infinity and poison the key's state for good. */
function finite(v: number, what: string): number {
  if (!(Math.abs(v) <= FLOAT32_MAX)) {
    throw new InvalidEventError(`${what} scales to ${v}, outside the float32 range`);
  }
  return v;
}

function iso(ts: number): string {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toISOString();
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}
