import { once } from 'node:events';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { KeyedStepper } from '../../src/engine/keyedStepper.js';
import { perEvent } from '../../src/engine/rollout.js';
import type { Model } from '../../src/model/types.js';
import { MemoryStateStore } from '../../src/state/memoryStore.js';
import { LmdbModelStates } from '../../src/state/modelStates.js';
import { ensureBuilt } from '../helpers/build.js';
import { tempDir } from '../helpers/fixtures.js';
import { prng, tinyLstm } from '../helpers/models.js';
import { connect, modelFile, serveBin } from '../helpers/serve.js';

const A = tinyLstm(7);
const B: Model = { ...tinyLstm(8), version: '2' };

beforeAll(() => {
  ensureBuilt();
});

interface Ev {
  key: string;
  ts: number;
  id: string;
  features: number[];
}

interface Answer {
  readonly index: number;
  /** The server's event position: events it had stepped before this one, over every run. */
  readonly position: number;
  readonly body: Record<string, unknown>;
}

interface Switch {
  readonly at: number;
  readonly primary: string;
}

async function models(url: string): Promise<{ events: number; switches: Switch[] }> {
  return (await (await fetch(`${url}/admin/models`)).json()) as { events: number; switches: Switch[] };
}

describe('serve with a shadow under kill -9 in the middle of promotes', () => {
  it('answers every event exactly once, by the model primary at its position, across 6 kills', async () => {
    const total = 4000;
    const keys = 50;
    const rnd = prng(42);
    const events: Ev[] = Array.from({ length: total }, (_, i) => ({
      key: `k${Math.floor(rnd() * keys)}`,
      ts: 1_700_000_000_000 + i * 1000,
      id: `e${i}`,
      features: [rnd() * 2 - 1, rnd() * 2 - 1, rnd() * 2 - 1],
    }));
    const [a, b] = [await modelFile(A), await modelFile(B)];
    const state = await tempDir('rollout-crash');
    const args = ['--model', a, '--shadow', b, '--state', state, '--port', '0'];
    const answers: Answer[] = [];
    let next = 0;
    let kills = 0;
    let promotesAnswered = 0;
    const killDelays: number[] = [];
    // Where each event was sent: the run and the server position it would take there; it was
    // applied in that run if the position is below the next run's starting position.
    const sends = new Map<number, Array<{ run: number; position: number }>>();
    const runStarts: number[] = [];
    while (next < total) {
      const { child, url } = await serveBin(args);
      const start = await models(url);
      const run = runStarts.length;
      runStarts.push(start.events);
      const ws = await connect(`${url.replace('http', 'ws')}/ingest`);
      // This run's answers arrive in send order; answer j is the event at server position start + j.
      let sentThisRun = 0;
      let answeredThisRun = 0;
      const order: number[] = [];
      ws.on('message', (data) => {
        const body = JSON.parse(data.toString()) as Record<string, unknown>;
        const index = order[answeredThisRun];
        answers.push({ index, position: start.events + answeredThisRun, body });
        answeredThisRun++;
        next = Math.max(next, index + 1);
      });
      const exited = once(child, 'exit');
      const killRun = kills < 6;
      // Send the rest in frames, a few in flight; in a run to be killed, promote part way and kill
      // the server a random moment after asking (before or after the switch is durable).
      const promoteAfter = killRun ? Math.floor(rnd() * 20) + 5 : -1;
      let frames = 0;
      let killed = false;
      let from = next;
      while (from < total && !killed) {
        if (sentThisRun - answeredThisRun > 60) {
          await new Promise((r) => setTimeout(r, 1));
          if (ws.readyState !== WebSocket.OPEN) break;
          continue;
        }
        const frame = events.slice(from, from + 20);
        for (let i = 0; i < frame.length; i++) {
          sends.set(from + i, [
            ...(sends.get(from + i) ?? []),
            { run, position: start.events + order.length },
          ]);
          order.push(from + i);
        }
        ws.send(JSON.stringify(frame));
        sentThisRun += frame.length;
        from += frame.length;
        frames++;
        if (frames === promoteAfter) {
          // Half the kills come a moment after the switch was acknowledged (durable), half a
          // random moment after it was asked for (it may or may not have become durable).
          const afterAck = kills % 2 === 1;
          const delay = Math.floor(rnd() * (afterAck ? 20 : 60));
          killDelays.push(delay);
          const asked = fetch(`${url}/admin/promote`, { method: 'POST' })
            .then((r) => {
              if (r.ok) promotesAnswered++;
            })
            .catch(() => {});
          if (afterAck) await asked;
          await new Promise((r) => setTimeout(r, delay));
          child.kill('SIGKILL');
          kills++;
          killed = true;
        }
        await new Promise((r) => setImmediate(r));
      }
      if (!killed) {
        while (answeredThisRun < sentThisRun) await new Promise((r) => setTimeout(r, 5));
        ws.close();
        child.kill('SIGTERM');
      }
      await exited;
      await new Promise((r) => setTimeout(r, 20));
      ws.terminate();
      if (!killRun && next >= total) break;
      // Resent from the first event without an answer: answered events are a prefix.
      next = firstUnanswered(answers, total);
    }

    // The durable switch record, read back from the state directory.
    const states = new LmdbModelStates(join(state, 'models'));
    const meta = states.readMeta()!;
    const switches = meta.switches;
    expect(kills).toBe(6);
    expect(switches.length).toBeGreaterThanOrEqual(1);
    expect(switches.length).toBeLessThanOrEqual(6);
    // Every switch acknowledged over HTTP is in the record (a killed one may be there unacknowledged).
    expect(switches.length).toBeGreaterThanOrEqual(promotesAnswered);
    const primaryAt = (position: number) => {
      let p = 'tiny@1';
      for (const s of switches) if (s.at <= position) p = s.primary;
      return p;
    };
    const outputs = { 'tiny@1': await offline(A, events), 'tiny@2': await offline(B, events) };

    // Each event answered once: nothing lost, nothing answered twice.
    const byIndex = new Map<number, Answer[]>();
    for (const ans of answers) byIndex.set(ans.index, [...(byIndex.get(ans.index) ?? []), ans]);
    expect(byIndex.size).toBe(total);
    expect([...byIndex.values()].filter((l) => l.length !== 1)).toEqual([]);
    let fresh = 0;
    let repeated = 0;
    let duplicates = 0;
    for (const { index, position, body } of answers) {
      if ('duplicate' in body) {
        duplicates++;
        continue;
      }
      const model = body['model'] as 'tiny@1' | 'tiny@2';
      expect(body['output'], `event ${index}`).toEqual(outputs[model][index]);
      if (body['redelivered']) {
        repeated++;
        // A repeat is answered by the model that was primary where the event was first applied.
        const applied = (sends.get(index) ?? []).find((x) => x.position < (runStarts[x.run + 1] ?? Infinity));
        expect(applied, `event ${index} was applied somewhere`).toBeDefined();
        expect(model, `repeat of event ${index} applied at ${applied!.position}`).toBe(
          primaryAt(applied!.position),
        );
        continue;
      }
      fresh++;
      // A freshly stepped event is answered by the model the durable record says was primary there.
      expect(model, `event ${index} at position ${position}`).toBe(primaryAt(position));
    }
    // Both models stepped every event exactly once: each key's seq is its number of events.
    const counts = new Map<string, number>();
    for (const e of events) counts.set(e.key, (counts.get(e.key) ?? 0) + 1);
    for (const name of ['tiny@1', 'tiny@2']) {
      for await (const [key, record] of states.store(name).entries())
        expect(record.seq).toBe(counts.get(key));
    }
    await states.close();
    console.log(
      JSON.stringify({
        kills,
        switches: switches.length,
        promotesAnswered,
        fresh,
        repeated,
        duplicates,
        killDelays,
      }),
    );
    expect(fresh).toBeGreaterThan(total / 2);
  }, 240_000);
});

function firstUnanswered(answers: readonly Answer[], total: number): number {
  const seen = new Set(answers.map((a) => a.index));
  for (let i = 0; i < total; i++) if (!seen.has(i)) return i;
  return total;
}

async function offline(model: Model, events: readonly Ev[]): Promise<number[][]> {
  const stepper = new KeyedStepper({ model, store: new MemoryStateStore() });
  return perEvent(
    await stepper.process(events.map((event) => ({ event, position: { kind: 'none' as const } }))),
  ).map((o) => {
    if (o.kind !== 'prediction') throw new Error(`offline ${o.kind}`);
    return o.prediction.output;
  });
}
