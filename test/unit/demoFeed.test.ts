import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import type { Event } from '../../src/events/types.js';
import { startDemoFeed } from '../../src/server/demoFeed.js';
import type { EnginePipeline } from '../../src/server/pipeline.js';

const DAY = 86_400_000;

async function eventsFile(lines: string[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cellstream-demo-feed-'));
  const path = join(dir, 'events.ndjson');
  await writeFile(path, `${lines.join('\n')}\n`);
  return path;
}

/** Only `submit` is used by the feed; this records what it is given. */
function recordingPipeline(): { pipeline: EnginePipeline; submitted: Event[] } {
  const submitted: Event[] = [];
  const pipeline = { submit: (e: Event) => submitted.push(e) } as unknown as EnginePipeline;
  return { pipeline, submitted };
}

describe('demo feed', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('replays each lap so it ends at the current time, keeping the spacing and resetting each key once per lap', async () => {
    vi.useFakeTimers({ now: 1_800_000_000_000 });
    const file = await eventsFile([
      JSON.stringify({ key: 'a', ts: 10 * DAY, features: [1], id: 'x1' }),
      'not an event',
      JSON.stringify({ key: 'b', ts: 12 * DAY, features: [2] }),
      JSON.stringify({ key: 'a', ts: 15 * DAY, features: [3] }),
    ]);
    const { pipeline, submitted } = recordingPipeline();
    const stop = await startDemoFeed(pipeline, { file, eventsPerSecond: 10 });
    await vi.advanceTimersByTimeAsync(300); // 3 events: one lap
    const lap1Start = Date.now() - 300 + 100; // the first tick fires 100 ms in
    await vi.advanceTimersByTimeAsync(300); // the next lap
    stop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(submitted).toHaveLength(6);
    const [a1, b1, a2, a1b, b1b, a2b] = submitted;
    expect(a2.ts).toBe(lap1Start); // the file's last event at the lap's start: nothing lies ahead of the clock
    expect(b1.ts - a1.ts).toBe(2 * DAY);
    expect(a2.ts - a1.ts).toBe(5 * DAY);
    expect([a1.reset, b1.reset, a2.reset]).toEqual([true, true, undefined]);
    expect([a1b.reset, b1b.reset, a2b.reset]).toEqual([true, true, undefined]);
    expect(a1b.ts).toBeGreaterThan(a1.ts);
    expect(a2b.ts - a1b.ts).toBe(5 * DAY);
    expect(a1.id).toBeUndefined();
  });

  it('refuses a missing file or one without events, naming the config key', async () => {
    const { pipeline } = recordingPipeline();
    await expect(
      startDemoFeed(pipeline, { file: '/nonexistent/x.ndjson', eventsPerSecond: 1 }),
    ).rejects.toThrow(/sources\.demo\.file: cannot read/);
    const empty = await eventsFile(['nothing here']);
    const err = await startDemoFeed(pipeline, { file: empty, eventsPerSecond: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/holds no valid events/);
  });
});
