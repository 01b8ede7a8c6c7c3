import type { Position } from '../events/types.js';

/** What a key's state last applied, as kept in its `StateRecord`. */
export interface Applied {
  readonly lastApplied: Position;
  readonly lastId?: string | undefined;
}

/**
 * Whether an event at `position` with `id` is a redelivery of one already in the key's state:
 * its id is the last applied id, or it sits at or before the last applied position of the same
 * file or topic-partition. Positions of different streams, and `none`, never compare.
 */
export function alreadyApplied(applied: Applied, position: Position, id: string | undefined): boolean {
  if (id !== undefined && id === applied.lastId) return true;
  const last = applied.lastApplied;
  if (position.kind === 'line' && last.kind === 'line') {
    return position.file === last.file && position.line <= last.line;
  }
  if (position.kind === 'offset' && last.kind === 'offset') {
    // Kafka offsets are int64, carried as strings; BigInt compares them exactly.
    return (
      position.topic === last.topic &&
      position.partition === last.partition &&
      BigInt(position.offset) <= BigInt(last.offset)
    );
  }
  return false;
}

/**
 * Whether the event is the very one the key's state applied last (same id, or the same position),
 * rather than an older one: only that event's prediction is kept in the state to be repeated.
 */
export function isLastApplied(applied: Applied, position: Position, id: string | undefined): boolean {
  if (id !== undefined && id === applied.lastId) return true;
  const last = applied.lastApplied;
  if (position.kind === 'line' && last.kind === 'line') {
    return position.file === last.file && position.line === last.line;
  }
  if (position.kind === 'offset' && last.kind === 'offset') {
    return (
      position.topic === last.topic &&
      position.partition === last.partition &&
      BigInt(position.offset) === BigInt(last.offset)
    );
  }
  return false;
}
