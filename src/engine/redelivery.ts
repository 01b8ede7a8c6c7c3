import type { Position } from '../events/types.js';

/** Default `idWindow`: how many of a key's last applied ids are remembered. */
export const DEFAULT_ID_WINDOW = 8;
/** Largest `idWindow`: the ids live in the key's record, read and written with every event. */
export const MAX_ID_WINDOW = 1024;

/** What a key's state last applied, as kept in its `StateRecord`. */
export interface Applied {
  readonly lastApplied: Position;
  readonly lastId?: string | undefined;
  /** Ids applied before the last one, oldest first: with `lastId`, the key's id window. */
  readonly earlierIds?: readonly string[] | undefined;
}

/**
 * Whether an event at `position` with `id` is a redelivery of one already in the key's state:
 * its id is among the key's last applied ids (`lastId`, `earlierIds`), or it sits at or before
 * the last applied position of the same file or topic-partition. Positions of different
 * streams, and `none`, never compare.
 */
export function alreadyApplied(applied: Applied, position: Position, id: string | undefined): boolean {
  if (id !== undefined && (id === applied.lastId || applied.earlierIds?.includes(id) === true)) return true;
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

/**
 * The earlier ids after a step of an event with `nextId`: the previous `lastId` joins them, and
 * the oldest leave so that they and `nextId` number at most `window`. Returns `earlier` itself
 * when unchanged, else a new array (`undefined` when empty); never modifies `earlier`.
 */
export function nextEarlierIds(
  earlier: readonly string[] | undefined,
  lastId: string | undefined,
  nextId: string | undefined,
  window: number,
): readonly string[] | undefined {
  const keep = window - (nextId === undefined ? 0 : 1);
  if (keep <= 0) return undefined;
  if (lastId === undefined) {
    if (earlier === undefined || earlier.length === 0) return undefined;
    return earlier.length > keep ? earlier.slice(earlier.length - keep) : earlier;
  }
  const all = earlier === undefined ? [lastId] : [...earlier, lastId];
  return all.length > keep ? all.slice(all.length - keep) : all;
}
