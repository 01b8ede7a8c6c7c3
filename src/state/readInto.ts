import type { ReadInto, StateRecord } from './types.js';

/** Throws `RangeError` when `into` has no room for `count` keys' states and outputs. */
export function checkInto(into: ReadInto | undefined, count: number): void {
  if (!into) return;
  if (into.states.length < count * into.stateSize || into.outputs.length < count * into.outputSize) {
    throw new RangeError(
      `read buffers of ${into.states.length} state and ${into.outputs.length} output floats are too small for ` +
        `${count} keys of ${into.stateSize} and ${into.outputSize} floats`,
    );
  }
}

/**
 * A record with `state` and `lastOutput` as `getMany` hands them out for key `i`: copied into
 * `into` where they fit it (views of `into`), else into arrays of their own — unless `fresh` says
 * `record`'s arrays are already the caller's (just decoded), when they are kept as they are.
 * The record's other fields are shared: they are immutable.
 */
export function readRecord(
  record: StateRecord,
  into: ReadInto | undefined,
  i: number,
  fresh: boolean,
): StateRecord {
  const state = arrayFor(record.state, into?.states, into?.stateSize ?? -1, i, fresh);
  const out = record.lastOutput;
  const lastOutput =
    out === undefined ? undefined : arrayFor(out, into?.outputs, into?.outputSize ?? -1, i, fresh);
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
  if (lastOutput !== undefined) copy.lastOutput = lastOutput;
  if (record.updatedAt !== undefined) copy.updatedAt = record.updatedAt;
  return copy;
}

function arrayFor(
  src: Float32Array,
  buffer: Float32Array | undefined,
  size: number,
  i: number,
  fresh: boolean,
): Float32Array {
  if (buffer !== undefined && src.length === size) {
    const at = i * size;
    buffer.set(src, at);
    return buffer.subarray(at, at + size);
  }
  return fresh ? src : src.slice();
}
