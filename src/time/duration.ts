import { ConfigError } from '../errors.js';

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Milliseconds of a duration written as a number and a unit (`500ms`, `90s`, `15m`, `12h`, `30d`,
 * `2w`; a bare number is ms). Throws `ConfigError` naming `what` on anything else.
 */
export function parseDuration(text: string, what = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$/.exec(text);
  if (!m) {
    throw new ConfigError(`${what} '${text}' is not a duration: use a number and a unit, e.g. 90s, 12h, 30d`);
  }
  const ms = Number(m[1]) * UNIT_MS[m[2] ?? 'ms'];
  if (!(ms > 0) || !Number.isFinite(ms))
    throw new ConfigError(`${what} must be more than zero, got '${text}'`);
  return ms;
}
