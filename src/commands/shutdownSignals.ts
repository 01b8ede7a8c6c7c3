// Imports nothing: the bin loads this module before the rest of the CLI (which takes a while to
// load), so that a signal in the first moments of a long-running command is caught.

let first: Promise<NodeJS.Signals> | undefined;

/**
 * The first SIGINT or SIGTERM the process receives, caught from the moment this is first called
 * (the bin calls it first thing for `serve` and `kafka`). A long-running command awaits it once
 * started; a signal that came during start-up is then already there, so the command shuts down
 * cleanly as soon as it can instead of dying by the signal. Each handler is installed once, so a
 * second signal of the same kind ends the process at once (its default action), the usual way to
 * cut a slow shutdown short.
 */
export function shutdownSignal(): Promise<NodeJS.Signals> {
  first ??= new Promise((resolve) => {
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
    for (const signal of signals) process.once(signal, () => resolve(signal));
  });
  return first;
}

/** Commands that run until a signal, for which the bin catches signals before loading the CLI. */
export const LONG_RUNNING_COMMANDS: readonly string[] = ['serve', 'kafka'];
