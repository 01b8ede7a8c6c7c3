import { describe, expect, it } from 'vitest';
import { SendAhead } from '../../src/pipelines/sendAhead.js';

/** A send that settles when told to. */
function deferred() {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('SendAhead', () => {
  it('does not wait for the send it starts; settle waits for it and says nothing when it went through', async () => {
    const s = new SendAhead<string>();
    const d = deferred();
    s.start('a', () => d.promise);
    let settled = false;
    const settling = s.settle().then((f) => {
      settled = true;
      return f;
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(settled).toBe(false);
    d.resolve();
    expect(await settling).toBeUndefined();
  });

  it('hands a failure back once, with its owner, and never as an unhandled rejection', async () => {
    const s = new SendAhead<{ partition: number }>();
    const owner = { partition: 3 };
    const error = new Error('MESSAGE_TOO_LARGE');
    s.start(owner, () => Promise.reject(error));
    await new Promise((r) => setTimeout(r, 10));
    expect(await s.settle()).toEqual({ owner, error });
    expect(await s.settle()).toBeUndefined();
  });

  it('refuses a second send while one is in flight, so sends stay one at a time and in order', async () => {
    const s = new SendAhead<string>();
    const order: string[] = [];
    const first = deferred();
    s.start('a', () => first.promise.then(() => void order.push('a')));
    expect(() => s.start('b', async () => void order.push('b'))).toThrow(RangeError);
    first.resolve();
    await s.settle();
    s.start('b', async () => void order.push('b'));
    await s.settle();
    expect(order).toEqual(['a', 'b']);
  });

  it('settles at once when nothing was started', async () => {
    expect(await new SendAhead<string>().settle()).toBeUndefined();
  });
});
