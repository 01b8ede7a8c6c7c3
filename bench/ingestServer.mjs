// The server side of bench/ingest.mjs, in its own worker thread so that the clients' JSON work
// does not share the server's event loop (as on a real deployment, where clients are elsewhere).
import { parentPort, workerData } from 'node:worker_threads';
import { parseConfig } from '../dist/config/load.js';
import { createLogger } from '../dist/server/logger.js';
import { startServer } from '../dist/server/serve.js';

const config = parseConfig([{ values: workerData, source: () => 'bench' }]);
const server = await startServer(config, { logger: createLogger('silent') });
parentPort.postMessage({ url: server.url });
parentPort.on('message', async (msg) => {
  if (msg === 'stats') {
    const metrics = await server.metrics.registry.metrics();
    const dropped = Number(/cellstream_subscriber_dropped_total (\d+)/.exec(metrics)[1]);
    global.gc?.();
    parentPort.postMessage({
      peak: server.subscriptions.peakBufferedBytes(),
      dropped,
      heapUsed: process.memoryUsage().heapUsed,
    });
  } else if (msg === 'busy') {
    // This thread's event loop time spent not idle, ms since it started.
    const { active } = performance.eventLoopUtilization();
    parentPort.postMessage(active);
  } else if (msg === 'close') {
    await server.close();
    parentPort.postMessage({ closed: true });
    parentPort.close();
  }
});
