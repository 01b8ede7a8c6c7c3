import type { Position } from '../events/types.js';

/**
 * The last position of each source stream (a file, a topic-partition) among `positions`: what a
 * source may commit once a batch holding them is done. Positions of kind `none` name no stream
 * and are left out.
 */
export function lastPositions(positions: Iterable<Position>): Position[] {
  const last = new Map<string, Position>();
  for (const p of positions) {
    if (p.kind === 'none') continue;
    const stream = p.kind === 'line' ? `line\u0000${p.file}` : `offset\u0000${p.topic}\u0000${p.partition}`;
    const seen = last.get(stream);
    if (seen === undefined || after(p, seen)) last.set(stream, p);
  }
  return [...last.values()];
}

function after(p: Position, q: Position): boolean {
  if (p.kind === 'line' && q.kind === 'line') return p.line > q.line;
  // Kafka offsets are int64, carried as strings; BigInt compares them exactly.
  if (p.kind === 'offset' && q.kind === 'offset') return BigInt(p.offset) > BigInt(q.offset);
  return false;
}
