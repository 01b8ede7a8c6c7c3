// The logic of renewingProducer against a double; test/integration/kafka-producer-renewal.test.ts
// runs it against a real broker.
import { describe, expect, it } from 'vitest';
import type { KafkaProducer } from '../../src/kafka/adapter.js';
import { renewingProducer } from '../../src/kafka/renewingProducer.js';

interface Session {
  readonly id: number;
  connected: boolean;
  failNext: boolean;
  failConnect: boolean;
  sends: number;
  /** Sends wait for it (a request in flight). */
  gate?: Promise<void>;
}

function sessions() {
  const made: Session[] = [];
  let failConnect = false;
  const create = (): KafkaProducer => {
    const s: Session = { id: made.length, connected: false, failNext: false, failConnect, sends: 0 };
    made.push(s);
    return {
      async connect() {
        if (s.failConnect) throw new Error(`session ${s.id} cannot connect`);
        s.connected = true;
      },
      async disconnect() {
        s.connected = false;
      },
      async sendBatch() {
        const fail = s.failNext;
        s.failNext = false;
        if (s.gate) await s.gate;
        if (!s.connected) throw new Error(`session ${s.id} is not connected`);
        s.sends++;
        if (fail) throw new Error(`session ${s.id} failed`);
        return [];
      },
    };
  };
  return {
    made,
    create,
    set failConnect(v: boolean) {
      failConnect = v;
    },
  };
}

const batch = { topicMessages: [{ topic: 't', messages: [{ key: 'k', value: 'v' }] }] };

describe('renewingProducer', () => {
  it('keeps one session while sends succeed', async () => {
    const s = sessions();
    const p = renewingProducer(s.create);
    await p.connect();
    for (let i = 0; i < 3; i++) await p.sendBatch(batch);
    expect(s.made).toHaveLength(1);
    expect(s.made[0].sends).toBe(3);
  });

  it('sends after a failed send on a new session, and closes the failed one', async () => {
    const s = sessions();
    const p = renewingProducer(s.create);
    await p.connect();
    s.made[0].failNext = true;
    await expect(p.sendBatch(batch)).rejects.toThrow('session 0 failed');
    await p.sendBatch(batch);
    expect(s.made).toHaveLength(2);
    expect(s.made[0].connected).toBe(false);
    expect(s.made[1]).toMatchObject({ connected: true, sends: 1 });
    // Sends that succeed keep the new one.
    await p.sendBatch(batch);
    expect(s.made).toHaveLength(2);
    await p.disconnect();
    expect(s.made[1].connected).toBe(false);
  });

  it('tries again on the next send when the new session cannot connect (the broker still away)', async () => {
    const s = sessions();
    const p = renewingProducer(s.create);
    await p.connect();
    s.made[0].failNext = true;
    await expect(p.sendBatch(batch)).rejects.toThrow('session 0 failed');
    s.failConnect = true;
    await expect(p.sendBatch(batch)).rejects.toThrow('session 1 cannot connect');
    s.failConnect = false;
    await p.sendBatch(batch);
    expect(s.made.map((m) => m.connected)).toEqual([false, false, true]);
    expect(s.made[2].sends).toBe(1);
  });

  it('renews once for sends that wait on the same failure', async () => {
    const s = sessions();
    const p = renewingProducer(s.create);
    await p.connect();
    s.made[0].failNext = true;
    await expect(p.sendBatch(batch)).rejects.toThrow();
    await Promise.all([p.sendBatch(batch), p.sendBatch(batch), p.sendBatch(batch)]);
    expect(s.made).toHaveLength(2);
    expect(s.made[1].sends).toBe(3);
  });

  it('a late failure of a send on a replaced session leaves the new session alone', async () => {
    const s = sessions();
    const p = renewingProducer(s.create);
    await p.connect();
    let release: () => void = () => {};
    s.made[0].gate = new Promise((r) => {
      release = r;
    });
    const inFlight = p.sendBatch(batch);
    s.made[0].gate = undefined;
    s.made[0].failNext = true;
    await expect(p.sendBatch(batch)).rejects.toThrow('session 0 failed');
    await p.sendBatch(batch);
    // Session 0 was closed by the renewal: the send still in flight on it fails now.
    release();
    await expect(inFlight).rejects.toThrow('session 0 is not connected');
    await p.sendBatch(batch);
    expect(s.made).toHaveLength(2);
    expect(s.made[1].sends).toBe(2);
  });
});
