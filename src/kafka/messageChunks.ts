import type { Message } from 'kafkajs';

/**
 * Kafka refuses a record batch over the broker's `message.max.bytes` (about 1 MB by default), and
 * kafkajs would fail the whole send; one engine batch of wide outputs or large states easily
 * exceeds that. Sends are split into parts well below it.
 */
export const CHUNK_BYTES = 512 * 1024;

/**
 * An upper bound of a message's bytes in a record batch: key, value, headers and the record's
 * framing, which is at most 36 bytes (a varlong timestamp delta of up to 10 bytes, five varints
 * of up to 5, the attributes byte) plus up to 10 per header value (two varints). A looser bound
 * splits sends that fit one request: a changelog record of ~0.6 KB was counted ~10% too large.
 */
export function messageBytes(m: Message): number {
  let n = 36 + byteLength(m.key) + byteLength(m.value);
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    const values = Array.isArray(v) ? v : [v];
    for (const x of values) n += 10 + Buffer.byteLength(k) + byteLength(x);
  }
  return n;
}

function byteLength(v: unknown): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'string') return Buffer.byteLength(v);
  if (v instanceof Uint8Array) return v.byteLength;
  return Buffer.byteLength(String(v));
}

/** `messages` in order, cut into consecutive parts of at most `limit` estimated bytes (one message may exceed it alone). */
export function* chunkMessages(messages: readonly Message[], limit = CHUNK_BYTES): Generator<Message[]> {
  let chunk: Message[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = messageBytes(m);
    if (chunk.length > 0 && bytes + size > limit) {
      yield chunk;
      chunk = [];
      bytes = 0;
    }
    chunk.push(m);
    bytes += size;
  }
  if (chunk.length > 0) yield chunk;
}
