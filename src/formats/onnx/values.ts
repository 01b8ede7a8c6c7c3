import type { DenseLayer, RecurrentLayer } from '../../model/types.js';
import { isOne, num, type Size } from './symbolic.js';
import type { ConstTensor } from './tensors.js';

/**
 * What the importer knows about each tensor of the graph. The graph is never executed; each value
 * is classified by where it comes from:
 * - `const`: an initializer or Constant, or computed from them (weights, shape arguments);
 * - `ints`: a small integer vector (or scalar) known symbolically, e.g. the output of Shape;
 * - `zeros`: provably all zeros (ConstantOfShape of 0 and slices of it: exporters' initial states);
 * - `data`: derived from the graph input, carrying the network built so far and its axes;
 * - `opaque`: something else that is not data (a non-zero fill, an unevaluated computation);
 * - `poison`: a value that must not be used (a cell-state output, a second graph input).
 */
export type Value =
  | { readonly kind: 'const'; readonly t: ConstTensor }
  | { readonly kind: 'ints'; readonly scalar: boolean; readonly v: readonly Size[] }
  | { readonly kind: 'zeros' }
  | { readonly kind: 'data'; readonly axes: readonly Axis[]; readonly net: Net }
  | { readonly kind: 'opaque'; readonly why: string }
  | { readonly kind: 'poison'; readonly error: Error };

/**
 * One axis of a data tensor. `label` says what it holds: 'F' the feature vector of one step,
 * 'in0'…'inK' the graph input's other axes (one of which becomes the time axis, another the batch
 * axis, once the first recurrent node says so), '1' an axis of size one.
 */
export interface Axis {
  readonly label: string;
  readonly size: Size;
}

/** The network that a data value is the output of. */
export interface Net {
  readonly layers: readonly RecurrentLayer[];
  readonly recurrentNodes: readonly string[];
  readonly head: readonly DenseLayer[];
  /** True once the time axis was reduced to its last step (`y[:, -1]`, or a Y_h output). */
  readonly lastStep: boolean;
}

export const FEATURES = 'F';
export const UNIT = '1';

export function unitAxis(): Axis {
  return { label: UNIT, size: num(1) };
}

/** Integer values of a const or ints value, as sizes; undefined when the value is neither. */
export function intsOf(v: Value | undefined): { scalar: boolean; v: Size[] } | undefined {
  if (!v) return undefined;
  if (v.kind === 'ints') return { scalar: v.scalar, v: [...v.v] };
  if (v.kind === 'const' && v.t.ints && v.t.dims.length <= 1) {
    return { scalar: v.t.dims.length === 0, v: v.t.ints.map(num) };
  }
  return undefined;
}

/** Plain numbers of a const or ints value when all are known. */
export function numbersOf(v: Value | undefined): number[] | undefined {
  const i = intsOf(v);
  if (!i || i.v.some((s) => s === null || s.s.length > 0)) return undefined;
  return i.v.map((s) => s!.c);
}

/** True for values known to be all zeros. */
export function isZero(v: Value | undefined): boolean {
  if (!v) return false;
  if (v.kind === 'zeros') return true;
  if (v.kind === 'const') return (v.t.floats ?? v.t.ints ?? [1]).every((x) => x === 0);
  if (v.kind === 'ints') return v.v.every((s) => s !== null && s.c === 0);
  return false;
}

/** True when the axis holds one element whatever the input (a unit axis or a static 1). */
export function isUnit(a: Axis): boolean {
  return a.label === UNIT || isOne(a.size);
}
