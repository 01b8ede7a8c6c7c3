import { describe, expect, it } from 'vitest';
import { StateError } from '../../src/errors.js';
import { decodeStateRecord, encodeStateRecord, RECORD_CODEC_VERSION } from '../../src/state/recordCodec.js';
import type { StateRecord } from '../../src/state/types.js';
import { awkwardState, EVERY_POSITION, expectSameRecord, FINGERPRINT, makeRecord } from './records.js';

function roundTrip(record: StateRecord): StateRecord {
  return decodeStateRecord(encodeStateRecord(record));
}

function expectCorrupt(fn: () => unknown, message: RegExp): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(StateError);
    expect((e as StateError).code).toBe('STATE_CORRUPT');
    expect((e as StateError).message).toMatch(message);
    return;
  }
  throw new Error('expected STATE_CORRUPT');
}

describe('record codec', () => {
  it.each(EVERY_POSITION.map((p) => [JSON.stringify(p), p] as const))('round-trips position %s', (_, pos) => {
    const record = makeRecord(5, 16, { lastApplied: pos, state: awkwardState(16) });
    expectSameRecord(roundTrip(record), record);
  });

  it('round-trips lastId (including empty and non-ASCII) and its absence', () => {
    for (const lastId of ['evt-1', '', 'ид-🙂', 'x'.repeat(300)]) {
      const record = makeRecord(1, 4, { lastId });
      expectSameRecord(roundTrip(record), record);
    }
    const without = roundTrip(makeRecord(1, 4));
    expect('lastId' in without).toBe(false);
  });

  it('stores a sha-256 fingerprint as 32 raw bytes, anything else as a string', () => {
    const raw = encodeStateRecord(makeRecord(1, 0, { fingerprint: FINGERPRINT }));
    const asString = encodeStateRecord(makeRecord(1, 0, { fingerprint: FINGERPRINT.toUpperCase() }));
    expect(asString.length - raw.length).toBe(64 + 1 - 32);
    for (const fingerprint of [FINGERPRINT, FINGERPRINT.toUpperCase(), '', 'not-a-hash']) {
      expect(roundTrip(makeRecord(1, 2, { fingerprint })).fingerprint).toBe(fingerprint);
    }
  });

  it('keeps seq, ts and the empty state exactly', () => {
    const record = makeRecord(0, 0, { seq: 2 ** 53 - 1, ts: -1.5 });
    expectSameRecord(roundTrip(record), record);
  });

  it('is compact: an H=64 LSTM state with a Kafka position costs 78 bytes beyond its 512 state bytes', () => {
    // header 3, seq+ts 16, fingerprint 32, topic 'events' 1+6, partition 8, offset 8, length 4
    expect(encodeStateRecord(makeRecord(1, 128)).length).toBe(512 + 78);
  });

  it('starts with the version byte and decodes from an unaligned view of a larger buffer', () => {
    const record = makeRecord(9, 33, { state: awkwardState(33, 2) });
    const bytes = encodeStateRecord(record);
    // Version 3 unless warmed: an older build (before warm start) still reads it.
    expect(bytes[0]).toBe(3);
    expect(encodeStateRecord(makeRecord(9, 33, { warmedFrom: 2 }))[0]).toBe(RECORD_CODEC_VERSION);
    const host = new Uint8Array(bytes.length + 3);
    host.set(bytes, 1);
    const decoded = decodeStateRecord(host.subarray(1, 1 + bytes.length));
    expectSameRecord(decoded, record);
    expect(decoded.state.byteOffset).toBe(0);
  });

  it('refuses an unknown version, naming the key', () => {
    const bytes = encodeStateRecord(makeRecord(1, 4));
    bytes[0] = 99;
    expectCorrupt(() => decodeStateRecord(bytes, 'customer-42'), /customer-42.*unknown record version 99/);
  });

  it('refuses every truncation of a record', () => {
    const bytes = encodeStateRecord(
      makeRecord(1, 3, {
        lastId: 'id',
        lastApplied: { kind: 'offset', topic: 'tp', partition: 1, offset: 'x' },
      }),
    );
    for (let n = 0; n < bytes.length; n++) {
      expectCorrupt(() => decodeStateRecord(bytes.subarray(0, n), 'k'), /key 'k'.*truncated/);
    }
  });

  it('refuses trailing bytes, unknown flags and unknown position kinds', () => {
    const bytes = encodeStateRecord(makeRecord(1, 2));
    expectCorrupt(() => decodeStateRecord(Buffer.concat([bytes, Buffer.from([0])])), /unexpected bytes/);
    const flags = Buffer.from(bytes);
    flags[1] |= 0x80;
    expectCorrupt(() => decodeStateRecord(flags), /unknown flags/);
    const kind = Buffer.from(bytes);
    kind[2] = 7;
    expectCorrupt(() => decodeStateRecord(kind), /unknown position kind 7/);
  });

  it('round-trips the v2 fields lastOutput and updatedAt, bit for bit', () => {
    const record = makeRecord(3, 128, {
      lastId: 'e-3',
      lastOutput: awkwardState(9, 1),
      updatedAt: 1_732_700_123_456.5,
    });
    expectSameRecord(roundTrip(record), record);
    for (const lastOutput of [new Float32Array(0), Float32Array.of(0.73)]) {
      expectSameRecord(roundTrip(makeRecord(1, 4, { lastOutput })), makeRecord(1, 4, { lastOutput }));
    }
    const without = roundTrip(makeRecord(1, 4));
    expect('lastOutput' in without || 'updatedAt' in without).toBe(false);
  });

  it('costs 16 bytes more for a one-float output and a write time', () => {
    const plain = encodeStateRecord(makeRecord(1, 128)).length;
    const v2 = encodeStateRecord(makeRecord(1, 128, { lastOutput: Float32Array.of(1), updatedAt: 5 })).length;
    expect(v2 - plain).toBe(8 + 4 + 4);
  });

  it('still reads version-1 records, and refuses v2 flags in them', () => {
    // A v1 record is a v2 record without the v2 flags, under version byte 1.
    const record = makeRecord(4, 16, { lastId: 'old', state: awkwardState(16, 4) });
    const v1 = encodeStateRecord(record);
    v1[0] = 1;
    expectSameRecord(decodeStateRecord(v1), record);
    const v1WithOutput = encodeStateRecord(makeRecord(4, 2, { lastOutput: Float32Array.of(1) }));
    v1WithOutput[0] = 1;
    expectCorrupt(() => decodeStateRecord(v1WithOutput), /unknown flags 0xa/);
  });

  it('round-trips the v3 earlierIds, UTF-8 and empty strings included, and their absence', () => {
    const record = makeRecord(2, 8, { lastId: 'e-9', earlierIds: ['e-1', 'ü-é-😀', '', 'x'.repeat(200)] });
    expectSameRecord(roundTrip(record), record);
    // An empty list is written as none.
    expect('earlierIds' in roundTrip(makeRecord(1, 4, { earlierIds: [] }))).toBe(false);
    expect('earlierIds' in roundTrip(makeRecord(1, 4))).toBe(false);
  });

  it('costs a count byte and each id with its length byte for earlierIds', () => {
    const plain = encodeStateRecord(makeRecord(1, 128)).length;
    const ids = Array.from({ length: 7 }, (_, i) => `00000000-0000-4000-8000-00000000000${i}`);
    expect(ids[0]).toHaveLength(36);
    const withIds = encodeStateRecord(makeRecord(1, 128, { earlierIds: ids })).length;
    expect(withIds - plain).toBe(1 + 7 * 37);
  });

  it('costs at most 8 × 130 + 1 bytes for a window of 8 ids of the default 128-byte limit (a length of 128 takes two LEB128 bytes)', () => {
    const plain = encodeStateRecord(makeRecord(1, 128)).length;
    const id = 'x'.repeat(128);
    const withIds = encodeStateRecord(
      makeRecord(1, 128, { lastId: id, earlierIds: Array.from({ length: 7 }, () => id) }),
    ).length;
    expect(withIds - plain).toBe(8 * (2 + 128) + 1);
  });

  it('still reads version-2 records, and refuses the v3 flag in them', () => {
    const record = makeRecord(4, 16, { lastId: 'old', lastOutput: Float32Array.of(1), updatedAt: 3 });
    const v2 = encodeStateRecord(record);
    v2[0] = 2;
    expectSameRecord(decodeStateRecord(v2), record);
    const v2WithIds = encodeStateRecord(makeRecord(4, 2, { earlierIds: ['a'] }));
    v2WithIds[0] = 2;
    expectCorrupt(() => decodeStateRecord(v2WithIds), /unknown flags 0x12/);
  });

  it('round-trips the v4 warmedFrom, and its absence', () => {
    for (const warmedFrom of [0, 1, 285, 2 ** 53 - 1]) {
      const record = makeRecord(7, 16, {
        lastId: 'e-7',
        updatedAt: 9,
        warmedFrom,
        lastOutput: Float32Array.of(2),
      });
      expectSameRecord(roundTrip(record), record);
    }
    expect('warmedFrom' in roundTrip(makeRecord(1, 4))).toBe(false);
  });

  it('costs 8 bytes for warmedFrom, and nothing for keys that were not warmed', () => {
    const plain = encodeStateRecord(makeRecord(1, 128)).length;
    expect(encodeStateRecord(makeRecord(1, 128, { warmedFrom: 12 })).length - plain).toBe(8);
  });

  it('reads version-3 records as never warmed, and refuses the v4 flag in them', () => {
    // A v3 record is a v4 record without warmedFrom, under version byte 3 (as written unwarmed).
    const record = makeRecord(4, 16, {
      lastId: 'e-4',
      earlierIds: ['e-2', 'e-3'],
      lastOutput: Float32Array.of(0.25),
      updatedAt: 3,
      state: awkwardState(16, 5),
    });
    const v3 = encodeStateRecord(record);
    expect(v3[0]).toBe(3);
    const decoded = decodeStateRecord(v3);
    expectSameRecord(decoded, record);
    expect('warmedFrom' in decoded).toBe(false);
    const v3Warmed = encodeStateRecord(makeRecord(4, 2, { warmedFrom: 5 }));
    v3Warmed[0] = 3;
    expectCorrupt(() => decodeStateRecord(v3Warmed), /unknown flags 0x22/);
  });

  it('refuses a truncated warmedFrom', () => {
    const bytes = encodeStateRecord(makeRecord(1, 0, { warmedFrom: 3 }));
    for (let n = 0; n < bytes.length; n++) {
      expectCorrupt(() => decodeStateRecord(bytes.subarray(0, n), 'k'), /truncated/);
    }
  });

  it('refuses truncated earlierIds', () => {
    const bytes = encodeStateRecord(makeRecord(1, 0, { earlierIds: ['abc', 'de'] }));
    for (let n = 0; n < bytes.length; n++) {
      expectCorrupt(() => decodeStateRecord(bytes.subarray(0, n), 'k'), /truncated/);
    }
  });

  it('refuses a truncated lastOutput', () => {
    const bytes = encodeStateRecord(makeRecord(1, 2, { lastOutput: Float32Array.of(1, 2), updatedAt: 1 }));
    for (let n = 0; n < bytes.length; n++) {
      expectCorrupt(() => decodeStateRecord(bytes.subarray(0, n), 'k'), /truncated/);
    }
  });
});
