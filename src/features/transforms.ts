import type { MinMaxScaling, StandardScaling } from './spec.js';

/**
 * The numeric transforms of a feature spec, as pure functions on doubles. They mirror sklearn's
 * scalers exactly, including its treatment of a constant feature (a zero range or deviation
 * scales by 1), so values fitted there reproduce the training inputs here.
 */

/** Min-max scaling as sklearn's `MinMaxScaler.transform`. */
export function minmaxScale(x: number, s: MinMaxScaling): number {
  const [low, high] = s.feature_range ?? [0, 1];
  const range = s.max - s.min || 1;
  const y = ((x - s.min) / range) * (high - low) + low;
  return s.clip ? Math.min(high, Math.max(low, y)) : y;
}

/** The inverse of `minmaxScale` (without its clip), as `MinMaxScaler.inverse_transform`. */
export function minmaxInverse(y: number, s: MinMaxScaling): number {
  const [low, high] = s.feature_range ?? [0, 1];
  const range = s.max - s.min || 1;
  return ((y - low) / (high - low)) * range + s.min;
}

/** Standardisation as sklearn's `StandardScaler.transform`. */
export function standardScale(x: number, s: StandardScaling): number {
  return (x - s.mean) / (s.std || 1);
}

/** The inverse of `standardScale`. */
export function standardInverse(y: number, s: StandardScaling): number {
  return y * (s.std || 1) + s.mean;
}

/** Either scaling, or none. */
export function scale(x: number, s: { minmax?: MinMaxScaling; standard?: StandardScaling }): number {
  if (s.minmax) return minmaxScale(x, s.minmax);
  if (s.standard) return standardScale(x, s.standard);
  return x;
}

export const MS_PER_UNIT = {
  days: 86_400_000,
  hours: 3_600_000,
  minutes: 60_000,
  seconds: 1000,
  ms: 1,
} as const;

/** Time from `previousTs` to `ts` in `unit`; `first` when there is no previous event. */
export function timeSince(
  ts: number,
  previousTs: number | undefined,
  unit: keyof typeof MS_PER_UNIT,
  first: number,
): number {
  return previousTs === undefined ? first : (ts - previousTs) / MS_PER_UNIT[unit];
}

/**
 * Writes the one-hot code of `value` into `out` at `at` (which must hold zeros there); returns
 * false when `value` is none of `categories`, leaving the zeros.
 */
export function writeOneHot(
  value: unknown,
  categories: readonly (string | number)[],
  out: Float32Array,
  at: number,
): boolean {
  const i = categories.indexOf(value as string | number);
  if (i < 0) return false;
  out[at + i] = 1;
  return true;
}
