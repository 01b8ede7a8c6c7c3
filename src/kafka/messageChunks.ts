import type { OutgoingMessage } from './adapter.js';

/**
 * Kafka refuses a record batch over the broker's `message.max.bytes` (about 1 MB by default), and
 * the client would fail the whole send; one engine batch of wide outputs or large states easily
 * exceeds that. Sends are split into parts well below it.
 */
export const CHUNK_BYTES = 512 * 1024;

/** An upper estimate of a message's bytes on the wire: key, value, headers and record overhead. */
function messageBytes(m: OutgoingMessage): number {
  let n = 70 + byteLength(m.key) + byteLength(m.value);
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    n += 8 + Buffer.byteLength(k) + byteLength(v);
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
export function* chunkMessages<M extends OutgoingMessage>(
  messages: readonly M[],
  limit = CHUNK_BYTES,
): Generator<M[]> {
  let chunk: M[] = [];
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
