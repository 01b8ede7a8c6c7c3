import { readFile } from 'node:fs/promises';
import { ConfigError, EventError } from '../errors.js';
import { decodeEvent } from '../events/decode.js';
import type { Event } from '../events/types.js';
import type { IngestTarget } from './ingestTarget.js';

export interface DemoFeedOptions {
  readonly file: string;
  readonly eventsPerSecond: number;
  readonly onEvents?: (count: number) => void;
}

const TICK_MS = 100;

/**
 * Keeps a fresh install's dashboard alive: replays an NDJSON events file into the pipeline in a
 * loop, at a modest rate. Lines that are not events are skipped (the file is a demo, not data).
 * Returns a function that stops the feed.
 *
 * Each lap replays every key's history as a new sequence (its first event in the lap carries
 * `reset`), shifted so the lap's last event falls at the lap's start time. The events' own spacing
 * is kept, since a model with a time-since-previous feature reads it; ending at the current time
 * keeps every event behind the wall clock, so the service's `events.maxTsAhead` bound never
 * refuses one. The reset keeps event time from running backwards for a key across laps or across
 * restarts over the same state directory.
 */
export async function startDemoFeed(pipeline: IngestTarget, options: DemoFeedOptions): Promise<() => void> {
  let text: string;
  try {
    text = await readFile(options.file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `sources.demo.file: cannot read '${options.file}' (${(err as NodeJS.ErrnoException).code})`,
    );
  }
  const events: Event[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      events.push(decodeEvent(line));
    } catch (err) {
      if (!(err instanceof EventError)) throw err;
    }
  }
  if (events.length === 0)
    throw new ConfigError(`sources.demo.file: '${options.file}' holds no valid events`);

  const lastTs = Math.max(...events.map((e) => e.ts));
  let next = 0;
  let owed = 0;
  let shift = 0;
  const seenThisLap = new Set<string>();
  const timer = setInterval(() => {
    owed += (options.eventsPerSecond * TICK_MS) / 1000;
    const count = Math.floor(owed);
    owed -= count;
    for (let i = 0; i < count; i++) {
      if (next === 0) {
        shift = Date.now() - lastTs;
        seenThisLap.clear();
      }
      // The file's ids would make the second lap look like redeliveries; a replayed event is new.
      const { id: _id, ...event } = events[next];
      next = (next + 1) % events.length;
      const reset = !seenThisLap.has(event.key);
      seenThisLap.add(event.key);
      pipeline.submit({ ...event, ts: event.ts + shift, ...(reset ? { reset: true } : {}) }, () => {});
    }
    if (count > 0) options.onEvents?.(count);
  }, TICK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
