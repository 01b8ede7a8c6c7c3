import { describe, expect, it } from 'vitest';
import { ConfigError, StateError } from '../../src/errors.js';
import { StateSlab } from '../../src/state/stateSlab.js';
import type { StateRecord } from '../../src/state/types.js';
import { awkwardState, EVERY_POSITION, expectSameRecord, makeRecord } from './records.js';

const S = 6;

function slab(maxKeys: number, chunkSlots = 4): StateSlab {
  return new StateSlab({ stateSize: S, maxKeys, chunkSlots });
}

describe('StateSlab', () => {
  it('holds records exactly: every position kind, lastId, fingerprints, odd float bits', () => {
    const s = slab(100);
    const records = EVERY_POSITION.map((lastApplied, i) =>
      makeRecord(i, S, {
        lastApplied,
        state: awkwardState(S, i),
        fingerprint: i % 2 ? 'fp-odd' : 'fp-even',
        ...(i % 3 ? { lastId: `id-${i}` } : {}),
      }),
    );
    records.forEach((r, i) => {
      expect(s.set(`k${i}`, r)).toBeUndefined();
    });
    expect(s.size).toBe(records.length);
    records.forEach((r, i) => {
      expectSameRecord(s.get(`k${i}`)!, r);
    });
    expect(s.get('nope')).toBeUndefined();
    expect(s.has('k0')).toBe(true);
  });

  it('holds lastOutput and updatedAt when a record has them, and nothing when it has not', () => {
    const s = new StateSlab({ stateSize: S, outputSize: 3, maxKeys: 4, chunkSlots: 2 });
    const full = makeRecord(1, S, { lastOutput: awkwardState(3, 5), updatedAt: 1_732_700_000_123 });
    s.set('full', full);
    s.set('plain', makeRecord(2, S));
    expectSameRecord(s.get('full')!, full);
    expectSameRecord(s.get('plain')!, makeRecord(2, S));
    // Overwriting with a record without them clears them.
    s.set('full', makeRecord(3, S));
    expect('lastOutput' in s.get('full')! || 'updatedAt' in s.get('full')!).toBe(false);
    expect(s.fits(makeRecord(1, S, { lastOutput: new Float32Array(2) }))).toBe(false);
    expect(() => s.set('x', makeRecord(1, S, { lastOutput: new Float32Array(2) }))).toThrow(StateError);
  });

  it('copies in and out', () => {
    const s = slab(2);
    const r = makeRecord(1, S);
    s.set('k', r);
    r.state[0] = 42;
    const out = s.get('k')!;
    expect(out.state[0]).not.toBe(42);
    out.state[1] = 42;
    expect(s.peek('k')!.state[1]).not.toBe(42);
  });

  it('overwrites a key in place, clearing side strings it no longer has', () => {
    const s = slab(2);
    s.set('k', makeRecord(1, S, { lastId: 'x', lastApplied: EVERY_POSITION[5] }));
    s.set('k', makeRecord(2, S));
    expectSameRecord(s.get('k')!, makeRecord(2, S));
    expect(s.size).toBe(1);
  });

  it('evicts the least recently used key when full and hands its record back', () => {
    const s = slab(3);
    for (const k of ['a', 'b', 'c']) s.set(k, makeRecord(k.charCodeAt(0), S));
    s.get('a'); // a is now the most recent; b the oldest
    s.peek('b'); // peeking does not count as use
    const out = s.set('d', makeRecord(100, S));
    expect(out?.key).toBe('b');
    expect(out?.dirty).toBe(true);
    expectSameRecord(out!.record, makeRecord('b'.charCodeAt(0), S));
    expect(s.has('b')).toBe(false);
    expect([...s.entries()].map(([k]) => k)).toEqual(['c', 'a', 'd']);
    s.stateView('c');
    expect(s.set('e', makeRecord(1, S))?.key).toBe('a');
  });

  it('reports clean records as clean on eviction, and lists dirty ones', () => {
    const s = slab(2);
    s.set('loaded', makeRecord(1, S), { dirty: false });
    s.set('stepped', makeRecord(2, S));
    expect([...s.entries({ dirtyOnly: true })].map(([k]) => k)).toEqual(['stepped']);
    s.markClean(['stepped', 'unknown']);
    expect(s.isDirty('stepped')).toBe(false);
    s.set('loaded', makeRecord(3, S));
    expect(s.isDirty('loaded')).toBe(true);
    const out = s.set('third', makeRecord(4, S));
    expect(out).toMatchObject({ key: 'stepped', dirty: false });
  });

  it('lets the state be stepped in place through stateView', () => {
    const s = slab(2);
    s.set('k', makeRecord(1, S));
    const view = s.stateView('k')!;
    expect(view.length).toBe(S);
    view.fill(0.5);
    expect(Array.from(s.get('k')!.state)).toEqual(new Array(S).fill(0.5));
    expect(s.stateView('missing')).toBeUndefined();
  });

  it('reuses freed slots and evicts across chunk boundaries', () => {
    const s = slab(10, 4);
    for (let i = 0; i < 10; i++) s.set(`k${i}`, makeRecord(i, S));
    expect(s.delete('k3')).toBe(true);
    expect(s.delete('k3')).toBe(false);
    expect(s.evictOldest()?.key).toBe('k0');
    expect(s.size).toBe(8);
    s.set('new1', makeRecord(50, S));
    s.set('new2', makeRecord(51, S));
    expect(s.size).toBe(10);
    // Full again: the next new key pushes out the oldest remaining one.
    expect(s.set('new3', makeRecord(52, S))?.key).toBe('k1');
    for (let i = 4; i < 10; i++) expectSameRecord(s.get(`k${i}`)!, makeRecord(i, S));
    expectSameRecord(s.get('new2')!, makeRecord(51, S));
  });

  it('drains to empty with evictOldest, in LRU order', () => {
    const s = slab(5);
    for (const k of ['a', 'b', 'c']) s.set(k, makeRecord(1, S));
    s.get('a');
    const order: string[] = [];
    for (let e = s.evictOldest(); e; e = s.evictOldest()) order.push(e.key);
    expect(order).toEqual(['b', 'c', 'a']);
    expect(s.size).toBe(0);
    expect([...s.entries()]).toEqual([]);
    s.set('again', makeRecord(9, S));
    expect([...s.entries()].map(([k]) => k)).toEqual(['again']);
  });

  it('refuses a state of another size and bad options', () => {
    const s = slab(2);
    try {
      s.set('k', makeRecord(1, S + 1));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(StateError);
      expect((e as StateError).code).toBe('STATE_MODEL_MISMATCH');
    }
    expect(() => new StateSlab({ stateSize: 4, maxKeys: 0 })).toThrow(ConfigError);
    expect(() => new StateSlab({ stateSize: 4, maxKeys: 1, chunkSlots: 3 })).toThrow(ConfigError);
  });

  it('agrees with a plain Map-based LRU over a long random workload', () => {
    const max = 37;
    const s = slab(max, 8);
    const ref = new Map<string, StateRecord>(); // insertion order = LRU order
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let step = 0; step < 20_000; step++) {
      const key = `k${rand(60)}`;
      const op = rand(10);
      if (op < 5) {
        const r = makeRecord(step, S, { lastApplied: EVERY_POSITION[step % EVERY_POSITION.length] });
        const out = s.set(key, r);
        const had = ref.delete(key);
        let expected: string | undefined;
        if (!had && ref.size >= max) {
          expected = ref.keys().next().value!;
          expectSameRecord(out!.record, ref.get(expected)!);
          ref.delete(expected);
        }
        expect(out?.key).toBe(expected);
        ref.set(key, r);
      } else if (op < 8) {
        const got = s.get(key);
        const want = ref.get(key);
        if (want) {
          expectSameRecord(got!, want);
          ref.delete(key);
          ref.set(key, want);
        } else expect(got).toBeUndefined();
      } else if (op < 9) {
        expect(s.delete(key)).toBe(ref.delete(key));
      } else {
        const out = s.evictOldest();
        const oldest = ref.keys().next().value;
        expect(out?.key).toBe(oldest);
        if (oldest !== undefined) ref.delete(oldest);
      }
      expect(s.size).toBe(ref.size);
    }
    expect([...s.entries()].map(([k]) => k)).toEqual([...ref.keys()]);
  });
});
