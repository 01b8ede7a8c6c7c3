import { StateError } from '../errors.js';
import type { Position } from '../events/types.js';
import type { ReadInto, StateRecord } from './types.js';

/**
 * Binary form of a `StateRecord`, as durable stores keep it. Little-endian throughout:
 *
 * ```
 * u8  version (3, or 4 when warmedFrom is present; versions 1 and 2 are still read)
 * u8  flags: bit 0 lastId present, bit 1 fingerprint is 32 raw sha-256 bytes (else a string),
 *            bit 2 updatedAt present, bit 3 lastOutput present (bits 2 and 3: version 2 on),
 *            bit 4 earlierIds present (version 3 on), bit 5 warmedFrom present (version 4 on)
 * u8  position kind: 0 none, 1 offset as int64, 2 offset as string, 3 line
 * f64 seq, f64 ts
 * fingerprint: 32 bytes, or string
 * offset:  string topic, f64 partition, i64 offset | string offset
 * line:    string file, f64 line
 * string lastId (if flagged)
 * varint k, then k strings — earlierIds, oldest first (if flagged)
 * f64 updatedAt (if flagged)
 * f64 warmedFrom (if flagged)
 * u32 m, then m float32 — lastOutput (if flagged)
 * u32 n, then n float32 — the state vector
 * ```
 * A string is a LEB128 byte length and UTF-8 bytes. Numbers the type says are plain
 * `number`s are kept as f64 so any value round-trips exactly; the state vector dominates the
 * size anyway (512 bytes at H=64 for an LSTM layer).
 */
export const RECORD_CODEC_VERSION = 4;
/**
 * The version written for records without warmedFrom. A record is written in the oldest version
 * that holds it, so a build that predates warm start still reads every record but a warmed key's:
 * a partition moving back to an older instance mid rolling upgrade, or a binary rolled back, keeps
 * its state.
 */
const UNWARMED_VERSION = 3;

const FLAG_LAST_ID = 1;
const FLAG_RAW_FINGERPRINT = 2;
const FLAG_UPDATED_AT = 4;
const FLAG_LAST_OUTPUT = 8;
const FLAG_EARLIER_IDS = 16;
const FLAG_WARMED_FROM = 32;
/**
 * Flags each version may set; version 1 records predate updatedAt and lastOutput, version 2
 * earlierIds, version 3 warmedFrom.
 */
const KNOWN_FLAGS: Readonly<Record<number, number>> = {
  1: FLAG_LAST_ID | FLAG_RAW_FINGERPRINT,
  2: FLAG_LAST_ID | FLAG_RAW_FINGERPRINT | FLAG_UPDATED_AT | FLAG_LAST_OUTPUT,
  3: FLAG_LAST_ID | FLAG_RAW_FINGERPRINT | FLAG_UPDATED_AT | FLAG_LAST_OUTPUT | FLAG_EARLIER_IDS,
  4:
    FLAG_LAST_ID |
    FLAG_RAW_FINGERPRINT |
    FLAG_UPDATED_AT |
    FLAG_LAST_OUTPUT |
    FLAG_EARLIER_IDS |
    FLAG_WARMED_FROM,
};

const POS_NONE = 0;
const POS_OFFSET_INT = 1;
const POS_OFFSET_STRING = 2;
const POS_LINE = 3;

const SHA256_HEX = /^[0-9a-f]{64}$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// Every record of a model carries the same fingerprint: its test and its bytes are worked out once.
let lastFingerprint: string | undefined;
let lastFingerprintBytes: Buffer | undefined;

/** The 32 raw bytes of a sha-256 hex fingerprint, or undefined for any other string. */
function fingerprintBytes(fingerprint: string): Buffer | undefined {
  if (fingerprint !== lastFingerprint) {
    lastFingerprintBytes = SHA256_HEX.test(fingerprint) ? Buffer.from(fingerprint, 'hex') : undefined;
    lastFingerprint = fingerprint;
  }
  return lastFingerprintBytes;
}

/** Encodes `record`; the result is a fresh buffer the caller may keep. */
export function encodeStateRecord(record: StateRecord): Buffer {
  const fingerprintRaw = fingerprintBytes(record.fingerprint);
  const rawFingerprint = fingerprintRaw !== undefined;
  const pos = record.lastApplied;
  const offsetInt = pos.kind === 'offset' ? int64Offset(pos.offset) : undefined;
  const posKind =
    pos.kind === 'none'
      ? POS_NONE
      : pos.kind === 'line'
        ? POS_LINE
        : offsetInt === undefined
          ? POS_OFFSET_STRING
          : POS_OFFSET_INT;

  let size = 3 + 16 + (rawFingerprint ? 32 : stringSize(record.fingerprint));
  if (pos.kind === 'offset') {
    size += stringSize(pos.topic) + 8 + (offsetInt === undefined ? stringSize(pos.offset) : 8);
  } else if (pos.kind === 'line') {
    size += stringSize(pos.file) + 8;
  }
  if (record.lastId !== undefined) size += stringSize(record.lastId);
  const earlier =
    record.earlierIds !== undefined && record.earlierIds.length > 0 ? record.earlierIds : undefined;
  if (earlier !== undefined) {
    size += varintSize(earlier.length);
    for (const id of earlier) size += stringSize(id);
  }
  if (record.updatedAt !== undefined) size += 8;
  if (record.warmedFrom !== undefined) size += 8;
  if (record.lastOutput !== undefined) size += 4 + record.lastOutput.length * 4;
  size += 4 + record.state.length * 4;

  const out = Buffer.allocUnsafe(size);
  let at = 0;
  out[at++] = record.warmedFrom === undefined ? UNWARMED_VERSION : RECORD_CODEC_VERSION;
  out[at++] =
    (record.lastId !== undefined ? FLAG_LAST_ID : 0) |
    (rawFingerprint ? FLAG_RAW_FINGERPRINT : 0) |
    (record.updatedAt !== undefined ? FLAG_UPDATED_AT : 0) |
    (record.lastOutput !== undefined ? FLAG_LAST_OUTPUT : 0) |
    (earlier !== undefined ? FLAG_EARLIER_IDS : 0) |
    (record.warmedFrom !== undefined ? FLAG_WARMED_FROM : 0);
  out[at++] = posKind;
  at = out.writeDoubleLE(record.seq, at);
  at = out.writeDoubleLE(record.ts, at);
  if (fingerprintRaw !== undefined) {
    out.set(fingerprintRaw, at);
    at += fingerprintRaw.length;
  } else {
    at = writeString(out, at, record.fingerprint);
  }
  if (pos.kind === 'offset') {
    at = writeString(out, at, pos.topic);
    at = out.writeDoubleLE(pos.partition, at);
    at = offsetInt === undefined ? writeString(out, at, pos.offset) : out.writeBigInt64LE(offsetInt, at);
  } else if (pos.kind === 'line') {
    at = writeString(out, at, pos.file);
    at = out.writeDoubleLE(pos.line, at);
  }
  if (record.lastId !== undefined) at = writeString(out, at, record.lastId);
  if (earlier !== undefined) {
    at = writeVarint(out, at, earlier.length);
    for (const id of earlier) at = writeString(out, at, id);
  }
  if (record.updatedAt !== undefined) at = out.writeDoubleLE(record.updatedAt, at);
  if (record.warmedFrom !== undefined) at = out.writeDoubleLE(record.warmedFrom, at);
  if (record.lastOutput !== undefined) at = writeFloats(out, at, record.lastOutput);
  writeFloats(out, at, record.state);
  return out;
}

function writeFloats(out: Buffer, at: number, values: Float32Array): number {
  at = out.writeUInt32LE(values.length, at);
  if (LITTLE_ENDIAN_HOST) {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), at);
  } else {
    for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i], at + i * 4);
  }
  return at + values.byteLength;
}

/**
 * Decodes what `encodeStateRecord` wrote. The returned state vector owns its memory, so
 * `bytes` may be a buffer the database reuses. Throws `StateError` `STATE_CORRUPT` (naming
 * `key` when given) on an unknown version, unknown flags, a truncated buffer or trailing bytes.
 * With `into`, the state and last output are decoded into its arrays for key `index` where they
 * fit, as `StateStore.getMany` says.
 */
export function decodeStateRecord(bytes: Uint8Array, key?: string, into?: ReadInto, index = 0): StateRecord {
  const r = new Reader(bytes, key);
  const version = r.u8();
  const known = KNOWN_FLAGS[version];
  if (known === undefined) {
    throw r.corrupt(`unknown record version ${version} (this build reads 1 to ${RECORD_CODEC_VERSION})`);
  }
  const flags = r.u8();
  if ((flags & ~known) !== 0) throw r.corrupt(`unknown flags 0x${flags.toString(16)}`);
  const posKind = r.u8();
  const seq = r.f64();
  const ts = r.f64();
  const fingerprint = flags & FLAG_RAW_FINGERPRINT ? r.hex(32) : r.string();

  let lastApplied: Position;
  switch (posKind) {
    case POS_NONE:
      lastApplied = { kind: 'none' };
      break;
    case POS_OFFSET_INT:
    case POS_OFFSET_STRING: {
      const topic = r.string();
      const partition = r.f64();
      const offset = posKind === POS_OFFSET_INT ? r.i64().toString() : r.string();
      lastApplied = { kind: 'offset', topic, partition, offset };
      break;
    }
    case POS_LINE: {
      const file = r.string();
      lastApplied = { kind: 'line', file, line: r.f64() };
      break;
    }
    default:
      throw r.corrupt(`unknown position kind ${posKind}`);
  }

  const lastId = flags & FLAG_LAST_ID ? r.string() : undefined;
  let earlierIds: string[] | undefined;
  if (flags & FLAG_EARLIER_IDS) {
    const count = r.varint();
    earlierIds = [];
    for (let i = 0; i < count; i++) earlierIds.push(r.string());
  }
  const updatedAt = flags & FLAG_UPDATED_AT ? r.f64() : undefined;
  const warmedFrom = flags & FLAG_WARMED_FROM ? r.f64() : undefined;
  const lastOutput = flags & FLAG_LAST_OUTPUT ? r.float32s(r.u32(), into?.outputs[index]) : undefined;
  const state = r.float32s(r.u32(), into?.states[index]);
  r.end();
  // Absent fields stay absent (not `undefined`), so decoded records compare equal to what was
  // written; built up rather than spread, as conditional spreads clone the object each.
  const record: { -readonly [K in keyof StateRecord]: StateRecord[K] } = {
    seq,
    ts,
    state,
    lastApplied,
    fingerprint,
  };
  if (lastId !== undefined) record.lastId = lastId;
  if (earlierIds !== undefined) record.earlierIds = earlierIds;
  if (lastOutput !== undefined) record.lastOutput = lastOutput;
  if (updatedAt !== undefined) record.updatedAt = updatedAt;
  if (warmedFrom !== undefined) record.warmedFrom = warmedFrom;
  return record;
}

/** The offset as an int64 when its decimal string is canonical, so decoding gives the same string back. */
function int64Offset(offset: string): bigint | undefined {
  if (!/^-?(0|[1-9][0-9]{0,18})$/.test(offset) || offset === '-0') return undefined;
  const n = BigInt(offset);
  return n >= INT64_MIN && n <= INT64_MAX ? n : undefined;
}

function stringSize(s: string): number {
  const n = Buffer.byteLength(s, 'utf8');
  return varintSize(n) + n;
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

function writeString(out: Buffer, at: number, s: string): number {
  at = writeVarint(out, at, Buffer.byteLength(s, 'utf8'));
  return at + out.write(s, at, 'utf8');
}

/** Bounds-checked cursor; every read past the end is a corrupt record, never a RangeError. */
class Reader {
  private readonly buf: Buffer;
  private at = 0;

  constructor(
    bytes: Uint8Array,
    private readonly key: string | undefined,
  ) {
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  corrupt(what: string): StateError {
    const whose = this.key === undefined ? 'a state record' : `the state record of key '${this.key}'`;
    return new StateError('STATE_CORRUPT', `cannot decode ${whose}: ${what}`);
  }

  private need(n: number, what: string): number {
    const at = this.at;
    if (at + n > this.buf.length) {
      throw this.corrupt(`truncated at byte ${at} reading ${what} (record is ${this.buf.length} bytes)`);
    }
    this.at = at + n;
    return at;
  }

  u8(): number {
    return this.buf[this.need(1, 'a header byte')];
  }

  u32(): number {
    return this.buf.readUInt32LE(this.need(4, 'a length'));
  }

  f64(): number {
    return this.buf.readDoubleLE(this.need(8, 'a number'));
  }

  i64(): bigint {
    return this.buf.readBigInt64LE(this.need(8, 'an offset'));
  }

  hex(n: number): string {
    const at = this.need(n, 'the fingerprint');
    return this.buf.toString('hex', at, at + n);
  }

  varint(): number {
    let n = 0;
    let scale = 1;
    for (;;) {
      const b = this.u8();
      n += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 128;
      if (scale > 2 ** 35) throw this.corrupt('a length overflows');
    }
    return n;
  }

  string(): string {
    const n = this.varint();
    const at = this.need(n, 'a string');
    return this.buf.toString('utf8', at, at + n);
  }

  /** `n` floats, into `into` when it has `n`, else into a new array. */
  float32s(n: number, into?: Float32Array): Float32Array {
    const at = this.need(n * 4, `a state vector of ${n} floats`);
    const out = into !== undefined && into.length === n ? into : new Float32Array(n);
    if (LITTLE_ENDIAN_HOST) {
      new Uint8Array(out.buffer, out.byteOffset, n * 4).set(this.buf.subarray(at, at + n * 4));
    } else {
      for (let i = 0; i < n; i++) out[i] = this.buf.readFloatLE(at + i * 4);
    }
    return out;
  }

  end(): void {
    if (this.at !== this.buf.length) {
      throw this.corrupt(`${this.buf.length - this.at} unexpected bytes after the state vector`);
    }
  }
}
