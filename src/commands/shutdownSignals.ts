let first: Promise<NodeJS.Signals> | undefined;

/**
 * Listens for SIGTERM and SIGINT, once per process, and resolves with the first received. Call it
 * first thing in a long-running command: from then on those signals no longer kill the process
 * (exit 143) but ask it to shut down cleanly, however early they come. A second signal of the same
 * kind, once the first was taken, ends the process at once.
 */
export function shutdownSignal(): Promise<NodeJS.Signals> {
  first ??= new Promise<NodeJS.Signals>((resolve) => {
    const take = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', take);
      process.off('SIGINT', take);
      resolve(signal);
    };
    process.on('SIGTERM', take);
    process.on('SIGINT', take);
  });
  return first;
}
