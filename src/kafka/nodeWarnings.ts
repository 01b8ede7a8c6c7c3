/**
 * kafkajs 2.2.4 arms a timer with a negative delay whenever a connection's request queue has
 * nothing pending (`throttledUntil - Date.now()` with `throttledUntil` at -1; kafkajs#1751, not
 * fixed in any release). Node runs such a timer after 1 ms, as Node 20 silently did, but Node 24
 * also prints a `TimeoutNegativeWarning` once per process, telling users of `serve` about a problem
 * that is not one. This drops that warning when, and only when, kafkajs's request queue set the
 * timer; every other warning reaches Node's printer (and `--trace-warnings`, `--no-warnings`) as
 * before. It wraps the process's 'warning' listeners present now, so call it once at start-up,
 * from code that owns the process (the CLI, the tests), not from a library.
 */
export function dropKafkajsNegativeTimerWarning(proc: NodeJS.Process = process): void {
  if (wrapped.has(proc)) return;
  wrapped.add(proc);
  for (const listener of proc.listeners('warning')) {
    proc.off('warning', listener);
    proc.on('warning', (warning) => {
      if (isKafkajsNegativeTimer(warning)) return;
      listener(warning);
    });
  }
}

const wrapped = new WeakSet<NodeJS.Process>();

/** The frame of kafkajs's request queue, which sets the timer (either path separator). */
const KAFKAJS_REQUEST_QUEUE = /[\\/]kafkajs[\\/]src[\\/]network[\\/]requestQueue[\\/]/;

export function isKafkajsNegativeTimer(warning: Error): boolean {
  return warning.name === 'TimeoutNegativeWarning' && KAFKAJS_REQUEST_QUEUE.test(warning.stack ?? '');
}
