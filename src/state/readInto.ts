import type { ReadInto, StateRecord } from './types.js';

/** Throws `RangeError` when `into` has fewer arrays than `count` keys need. */
export function checkInto(into: ReadInto | undefined, count: number): void {
  if (!into) return;
  if (into.states.length < count || into.outputs.length < count) {
    throw new RangeError(
      `read buffers for ${into.states.length} states and ${into.outputs.length} outputs are too few for ${count} keys`,
    );
  }
}

/**
 * A record with `state` and `lastOutput` as `getMany` hands them out for key `i`: copied into
 * `into`'s arrays where they fit, else into arrays of their own — unless `fresh` says `record`'s
 * arrays are already the caller's (just decoded), when they are kept as they are. The record's
 * other fields are shared: they are immutable.
 */
export function readRecord(
  record: StateRecord,
  into: ReadInto | undefined,
  i: number,
  fresh: boolean,
): StateRecord {
  const state = arrayFor(record.state, into?.states[i], fresh);
  const out = record.lastOutput;
  const lastOutput = out === undefined ? undefined : arrayFor(out, into?.outputs[i], fresh);
  if (state === record.state && lastOutput === out) return record;
  // Spelled out: a spread costs an object clone per record, which a hot read notices.
  const copy: { -readonly [K in keyof StateRecord]: StateRecord[K] } = {
    seq: record.seq,
    ts: record.ts,
    state,
    lastApplied: record.lastApplied,
    fingerprint: record.fingerprint,
  };
  if (record.lastId !== undefined) copy.lastId = record.lastId;
  if (record.earlierIds !== undefined) copy.earlierIds = record.earlierIds;
  if (lastOutput !== undefined) copy.lastOutput = lastOutput;
  if (record.updatedAt !== undefined) copy.updatedAt = record.updatedAt;
  if (record.warmedFrom !== undefined) copy.warmedFrom = record.warmedFrom;
  return copy;
}

function arrayFor(src: Float32Array, into: Float32Array | undefined, fresh: boolean): Float32Array {
  if (into !== undefined && into.length === src.length) {
    if (into !== src) into.set(src);
    return into;
  }
  return fresh ? src : src.slice();
}
