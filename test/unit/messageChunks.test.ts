import { describe, expect, it } from 'vitest';
import { CHUNK_BYTES, chunkMessages } from '../../src/kafka/messageChunks.js';

describe('chunkMessages', () => {
  const msg = (i: number, bytes: number) => ({ key: `k${i}`, value: 'x'.repeat(bytes) });

  it('keeps every message, in order, in parts under the limit', () => {
    const messages = Array.from({ length: 500 }, (_, i) => msg(i, 5000));
    const parts = [...chunkMessages(messages)];
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.flat()).toEqual(messages);
    for (const p of parts)
      expect(p.reduce((n, m) => n + String(m.value).length, 0)).toBeLessThan(CHUNK_BYTES);
  });

  it('counts multi-byte characters and headers', () => {
    const wide = { key: 'k', value: '€'.repeat(100) }; // 300 bytes in UTF-8
    const headed = { key: 'k', value: '', headers: { reason: 'r'.repeat(300) } };
    expect([...chunkMessages([wide, wide], 2 * 300)]).toHaveLength(2);
    expect([...chunkMessages([headed, headed], 2 * 300)]).toHaveLength(2);
  });

  it('sends a single oversized message alone rather than dropping it', () => {
    const big = msg(1, 10_000);
    expect([...chunkMessages([msg(0, 10), big, msg(2, 10)], 1000)]).toEqual([
      [msg(0, 10)],
      [big],
      [msg(2, 10)],
    ]);
  });

  it('yields nothing for nothing', () => {
    expect([...chunkMessages([])]).toEqual([]);
  });
});
