import { RecordUndecodableError } from '../errors.js';

/** A value in the Confluent wire format: magic byte 0, a 4-byte big-endian schema id, the payload. */
export interface Framed {
  readonly schemaId: number;
  /** The bytes after the schema id (for Protobuf, the message indexes come first). */
  readonly body: Buffer;
}

export function unframe(value: Buffer, format: string): Framed {
  if (value.length < 5) {
    throw new RecordUndecodableError(
      format,
      `${value.length} bytes, shorter than the 5-byte Confluent header`,
    );
  }
  if (value[0] !== 0) {
    throw new RecordUndecodableError(
      format,
      `the first byte is ${value[0]}, not the Confluent wire format's magic byte 0 (a value written without the registry's serializer?)`,
    );
  }
  return { schemaId: value.readUInt32BE(1), body: value.subarray(5) };
}

/** Puts the header in front of a payload. */
export function frame(
  schemaId: number,
  payload: Buffer | Uint8Array,
  messageIndexes?: readonly number[],
): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(schemaId, 1);
  if (messageIndexes === undefined) return Buffer.concat([head, payload]);
  return Buffer.concat([head, encodeMessageIndexes(messageIndexes), payload]);
}

/**
 * The Protobuf message indexes Confluent's serializers write after the schema id: a zig-zag varint
 * count, then that many zig-zag varints (the path to the message type through the file's message
 * declarations and their nested ones). `[0]`, the file's first message, is written as the single
 * byte 0. Returns the path and where the message's bytes start.
 */
export function readMessageIndexes(body: Buffer): { path: number[]; offset: number } {
  let offset = 0;
  const next = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (offset >= body.length)
        throw new RecordUndecodableError('protobuf', 'the message indexes run past the end');
      const b = body[offset++];
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) break;
      shift += 7;
      if (shift > 28) throw new RecordUndecodableError('protobuf', 'a message index is not a valid varint');
    }
    // zig-zag: 0 → 0, 1 → -1, 2 → 1, …
    return result % 2 === 0 ? result / 2 : -(result + 1) / 2;
  };
  const count = next();
  if (count === 0) return { path: [0], offset };
  if (count < 0 || count > 100) {
    throw new RecordUndecodableError(
      'protobuf',
      `${count} message indexes (expected a short non-negative count)`,
    );
  }
  const path: number[] = [];
  for (let i = 0; i < count; i++) {
    const index = next();
    if (index < 0) throw new RecordUndecodableError('protobuf', `a negative message index ${index}`);
    path.push(index);
  }
  return { path, offset };
}

export function encodeMessageIndexes(path: readonly number[]): Buffer {
  if (path.length === 1 && path[0] === 0) return Buffer.from([0]);
  const out: number[] = [];
  const put = (n: number) => {
    let z = n >= 0 ? n * 2 : -n * 2 - 1;
    while (z >= 0x80) {
      out.push((z & 0x7f) | 0x80);
      z = Math.floor(z / 128);
    }
    out.push(z);
  };
  put(path.length);
  for (const i of path) put(i);
  return Buffer.from(out);
}
