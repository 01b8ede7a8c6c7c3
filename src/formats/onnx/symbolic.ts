/**
 * Symbolic tensor sizes: a size is a monomial `c · s1 · s2 · …` over the graph input's dynamic
 * dimensions, or null when it cannot be known. This is just enough algebra to follow the shape
 * arithmetic exporters emit (Shape → Gather/Slice → Mul → Concat → Reshape) and to prove that a
 * Reshape keeps the time and feature axes apart.
 */
export interface Mono {
  readonly c: number;
  /** Symbol names, sorted, with repetition. */
  readonly s: readonly string[];
}

export type Size = Mono | null;

export const ONE: Mono = { c: 1, s: [] };

export function num(c: number): Mono {
  return { c, s: [] };
}

export function symbol(name: string): Mono {
  return { c: 1, s: [name] };
}

export function isNum(m: Size): m is Mono {
  return m !== null && m.s.length === 0;
}

export function isOne(m: Size): boolean {
  return m !== null && m.c === 1 && m.s.length === 0;
}

export function sameSize(a: Size, b: Size): boolean {
  return a !== null && b !== null && a.c === b.c && a.s.join('*') === b.s.join('*');
}

export function mul(a: Size, b: Size): Size {
  if (a === null || b === null) return null;
  return { c: a.c * b.c, s: [...a.s, ...b.s].sort() };
}

/** a / b when it is a monomial, else null. */
export function div(a: Size, b: Size): Size {
  if (a === null || b === null || b.c === 0 || a.c % b.c !== 0) return null;
  const rest = [...a.s];
  for (const s of b.s) {
    const i = rest.indexOf(s);
    if (i < 0) return null;
    rest.splice(i, 1);
  }
  return { c: a.c / b.c, s: rest };
}

export function add(a: Size, b: Size, sign: 1 | -1): Size {
  return isNum(a) && isNum(b) ? num(a.c + sign * b.c) : null;
}

export function product(sizes: readonly Size[]): Size {
  return sizes.reduce<Size>((acc, s) => mul(acc, s), ONE);
}

export function show(m: Size): string {
  if (m === null) return '?';
  const parts = m.c === 1 && m.s.length > 0 ? [...m.s] : [String(m.c), ...m.s];
  return parts.join('·');
}
