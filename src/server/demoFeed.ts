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
 * loop, at a modest rate, each event stamped with the current time. Lines that are not events are
 * skipped (the file is a demo, not data). Returns a function that stops the feed.
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

  let next = 0;
  let owed = 0;
  const timer = setInterval(() => {
    owed += (options.eventsPerSecond * TICK_MS) / 1000;
    const count = Math.floor(owed);
    owed -= count;
    const ts = Date.now();
    for (let i = 0; i < count; i++) {
      // The file's ids would make the second lap look like redeliveries; a replayed event is new.
      const { id: _id, ...event } = events[next];
      next = (next + 1) % events.length;
      pipeline.submit({ ...event, ts }, () => {});
    }
    if (count > 0) options.onEvents?.(count);
  }, TICK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
